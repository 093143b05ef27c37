"""The vector files themselves: each names its source and parses, each is read by a test, and the
loader reads the shared Merkle vectors beside the repository (their own tests come with the log)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import pytest
from support import vectors

TESTS = Path(__file__).resolve().parents[1]
INCLUSION = {"leafIdx", "treeSize", "root", "leafHash", "proof", "desc", "wantErr"}
CONSISTENCY = {"size1", "size2", "root1", "root2", "proof", "desc", "wantErr"}


@pytest.mark.parametrize("topic", vectors.topics())
def test_each_file_names_its_source_and_its_cases(topic: str) -> None:
    cases = vectors.load(topic)
    assert all(isinstance(case["id"], str) and case["id"] for case in cases)


@pytest.mark.parametrize("topic", vectors.topics())
def test_each_file_is_read_by_a_test(topic: str) -> None:
    sources = [p for p in TESTS.rglob("test_*.py") if "node_modules" not in p.parts]
    readers = [p for p in sources if p != Path(__file__) and f'"{topic}"' in p.read_text()]
    assert readers, f"tests/vectors/{topic}.json is read by no test"


def test_a_selection_that_matches_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no case has"):
        vectors.load("identifiers", scheme="passport")


def test_every_shared_merkle_vector_parses() -> None:
    cases = vectors.shared("merkle")
    assert "RFC 9162" in vectors.shared_source("merkle")
    kinds = {case["id"].split("/")[0] for case in cases}
    assert kinds == {"inclusion", "consistency"}
    for case in cases:
        fields = INCLUSION if case["id"].startswith("inclusion/") else CONSISTENCY
        assert set(case) - {"id"} == fields, case["id"]
        assert isinstance(case["wantErr"], bool)
        for name in sorted(fields & {"root", "leafHash", "root1", "root2"}):
            _hash(case[name])
        for node in case["proof"] or []:  # `null` in a few: no proof at all
            _hash(node)


def _hash(text: str | None) -> None:
    """A base64 SHA-256 hash, or empty or absent (cases that must be refused have those)."""
    if text:
        try:
            base64.b64decode(text, validate=True)
        except binascii.Error:
            pytest.fail(f"not base64: {text!r}")


def test_missing_shared_vectors_skip_and_say_where_they_were_looked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(vectors, "SHARED", tmp_path / "nowhere")
    with pytest.raises(pytest.skip.Exception, match=r"shared vectors not found at .*nowhere"):
        vectors.shared("merkle")
    (param,) = vectors.parametrize("merkle", from_shared=True).args[1]
    (mark,) = param.marks
    assert mark.name == "skip"
    assert "shared vectors not found" in mark.kwargs["reason"]
