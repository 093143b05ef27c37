"""docs/clients.md lists every reason a client can be told, as the code spells it today."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_reasons.py"
# What the tests see clients told: reason_of(error) == "X", or (StatusCode.Y, "X") pairs.
_ASSERTED = re.compile(
    r'reason_of\([^)]*\)\s*==\s*"([A-Z][A-Z0-9_]+)"|StatusCode\.[A-Z_]+,\s*"([A-Z][A-Z0-9_]+)"'
)


def test_the_reasons_tables_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_reason_the_tests_see_is_in_the_tables() -> None:
    document = (ROOT / "docs" / "clients.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([A-Z][A-Z0-9_*]+)` \|", document, re.MULTILINE))
    families = [re.compile(r.replace("*", "[A-Z_]+")) for r in listed if "*" in r]
    seen: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for match in _ASSERTED.finditer(path.read_text(encoding="utf-8")):
            seen.add(match.group(1) or match.group(2))
    missing = {r for r in seen - listed if not any(f.fullmatch(r) for f in families)}
    assert not missing, f"reasons clients are told that docs/clients.md does not list: {missing}"
