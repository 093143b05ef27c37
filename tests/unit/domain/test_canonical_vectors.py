"""RFC 8785's own vectors (tests/vectors/rfc8785.json) through domain/canonical.py: the bytes
canonical_bytes writes for the RFC's examples and for Appendix B's numbers, given there as IEEE
754 bit patterns so that every value is exact."""

from __future__ import annotations

import json
import struct

from support import vectors
from support.vectors import Case

from credit_gateway.domain.canonical import canonical_bytes, parse_json_object


@vectors.parametrize("rfc8785", kind="json")
def test_the_rfc_examples(case: Case) -> None:
    expected = case["output"].encode("utf-8")
    assert canonical_bytes(json.loads(case["input"])) == expected
    # The gateway's strict parser reads the RFC's input as json does, and the output is a
    # fixed point: canonical bytes parse back to the same canonical bytes.
    assert canonical_bytes(parse_json_object(case["input"].encode())) == expected
    assert canonical_bytes(parse_json_object(expected)) == expected


@vectors.parametrize("rfc8785", kind="number")
def test_the_appendix_b_numbers(case: Case) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(case["ieee754"]))
    assert canonical_bytes(value) == case["output"].encode()
    assert canonical_bytes([value]) == f"[{case['output']}]".encode()
