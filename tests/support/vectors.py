"""Test vectors kept as data, with their sources, read by one loader.

`tests/vectors/<topic>.json` holds {"source": ..., "cases": [{"id": ..., ...}, ...]}: the source is
the standard or RFC section the values come from, each case has an id unique in its file (a case
may name a narrower `source` of its own). `../shared/vectors/<topic>/` beside the repository holds
one JSON file per case and a README.md that names their source; a case's id is its path there.

    @vectors.parametrize("identifiers", scheme="uscc")   # one test per case, under its id
    def test_it(case: Case) -> None: ...

    vectors.load("identifiers")   # the cases themselves
    vectors.shared("merkle")      # the shared ones; skips the test if ../shared is not there
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "tests" / "vectors"
SHARED = ROOT.parent / "shared" / "vectors"

Case = dict[str, Any]


class SharedVectorsMissing(LookupError):
    """The shared vectors are not checked out beside the repository."""


def load(topic: str, **where: Any) -> list[Case]:
    """The cases of tests/vectors/<topic>.json whose fields equal `where` (all of them if none).
    A selection that matches nothing is an error: a mistyped filter must not test nothing."""
    path = LOCAL / f"{topic}.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document.get("source"), str) or not document["source"].strip():
        raise ValueError(f"{path.name}: no source named")
    cases: list[Case] = document["cases"]
    ids = [case["id"] for case in cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path.name}: case ids repeat")
    chosen = [c for c in cases if all(c.get(k) == v for k, v in where.items())]
    if not chosen:
        raise ValueError(f"{path.name}: no case has {where}")
    return chosen


def topics() -> list[str]:
    return sorted(p.stem for p in LOCAL.glob("*.json"))


def shared(topic: str) -> list[Case]:
    """Every case under ../shared/vectors/<topic>/, or the calling test is skipped."""
    try:
        return _shared(topic)
    except SharedVectorsMissing as missing:
        pytest.skip(str(missing))


def shared_source(topic: str) -> str:
    """The README that names where the shared vectors of `topic` come from."""
    readme = SHARED / topic / "README.md"
    if not readme.is_file():
        raise SharedVectorsMissing(f"no README.md naming the source of {readme.parent}")
    return readme.read_text(encoding="utf-8")


def parametrize(topic: str, *, from_shared: bool = False, **where: Any) -> pytest.MarkDecorator:
    """One run of the test per case, its argument `case`, its id the case's. Absent shared
    vectors give one skipped run that says where they were looked for."""
    try:
        cases = _shared(topic) if from_shared else load(topic, **where)
    except SharedVectorsMissing as missing:
        return pytest.mark.parametrize(
            "case", [pytest.param(None, marks=pytest.mark.skip(reason=str(missing)))]
        )
    return pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in cases])


def _shared(topic: str) -> list[Case]:
    folder = SHARED / topic
    if not folder.is_dir():
        raise SharedVectorsMissing(
            f"shared vectors not found at {folder}: check out the shared folder beside the "
            f"repository ({ROOT.parent})"
        )
    shared_source(topic)
    cases = []
    for path in sorted(folder.rglob("*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(case, dict):
            raise ValueError(f"{path}: a case is a JSON object")
        cases.append({**case, "id": path.relative_to(folder).with_suffix("").as_posix()})
    if not cases:
        raise SharedVectorsMissing(f"no vectors under {folder}")
    return cases
