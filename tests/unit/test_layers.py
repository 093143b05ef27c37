"""The layering is enforced by import-linter's contracts in pyproject.toml (run by `make lint`):
here they are shown to hold on the tree and to fail when the core imports an adapter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def lint() -> Path:
    if not LINT.exists():
        pytest.skip("import-linter is not installed in this environment")
    return LINT


def test_the_contracts_hold(lint: Path) -> None:
    result = _lint(ROOT / "src")
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("domain/ids.py", "import sqlalchemy"),
        ("domain/policy.py", "from credit_gateway.adapters.storage import db"),
        ("domain/release.py", "import grpc"),
    ],
)
def test_the_core_importing_an_adapter_breaks_them(
    lint: Path, tmp_path: Path, module: str, line: str
) -> None:
    shutil.copytree(
        ROOT / "src" / "credit_gateway",
        tmp_path / "credit_gateway",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    target = tmp_path / "credit_gateway" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode == 1
    assert "The pure core" in result.stdout
    assert "BROKEN" in result.stdout
