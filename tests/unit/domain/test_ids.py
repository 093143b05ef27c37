"""domain/ids: the ids' random part is RFC 4648 base32 of 16 bytes, lower case, unpadded, as
base64.b32encode writes it (the form every stored id has had)."""

from __future__ import annotations

import base64
import re

from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.domain.ids import _base32, new_id


@given(st.binary(min_size=16, max_size=16))
def test_the_random_part_is_b32encode_lower_case_unpadded(sixteen: bytes) -> None:
    assert _base32(sixteen) == base64.b32encode(sixteen).decode().rstrip("=").lower()


def test_the_edges_of_the_range() -> None:
    for sixteen in (bytes(16), b"\xff" * 16, b"\x80" + bytes(15), bytes(15) + b"\x01"):
        assert _base32(sixteen) == base64.b32encode(sixteen).decode().rstrip("=").lower()


def test_an_id_is_its_prefix_and_26_base32_characters() -> None:
    ids = {new_id("rec") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"rec_[a-z2-7]{25}[aeimquy4]", i) for i in ids)
