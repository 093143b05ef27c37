"""domain/cursor.py: the feed's cursor round-trips, is bound to its key and agreement, and every
text that is not one it made is refused alike (CURSOR_INVALID)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.domain.cursor import MAX_SEQ, decode_cursor, encode_cursor
from credit_gateway.errors import InvalidArgument

KEY = bytes(range(32))
seqs = st.integers(min_value=0, max_value=MAX_SEQ)
agreements = st.text(min_size=1, max_size=64)


def _refused(key: bytes, agreement: str, text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_cursor(key, agreement, text)
    assert caught.value.reason == "CURSOR_INVALID"


@given(seqs, agreements)
def test_a_cursor_round_trips_as_url_safe_text(seq: int, agreement: str) -> None:
    text = encode_cursor(KEY, agreement, seq)
    assert decode_cursor(KEY, agreement, text) == seq
    assert text.isascii()
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@given(seqs, agreements, agreements)
def test_a_cursor_of_another_agreement_is_invalid(seq: int, mine: str, theirs: str) -> None:
    if mine != theirs:
        _refused(KEY, mine, encode_cursor(KEY, theirs, seq))


@given(seqs, st.binary(min_size=32, max_size=32))
def test_a_cursor_under_another_key_is_invalid(seq: int, key: bytes) -> None:
    if key != KEY:
        _refused(KEY, "agr-1", encode_cursor(key, "agr-1", seq))


@given(seqs, st.data())
def test_any_changed_byte_makes_it_invalid(seq: int, data: st.DataObject) -> None:
    raw = bytearray(base64.urlsafe_b64decode(encode_cursor(KEY, "agr-1", seq) + "=="))
    at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[at] ^= data.draw(st.integers(min_value=1, max_value=255))
    _refused(KEY, "agr-1", base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode())


@given(st.text(max_size=80))
def test_text_it_did_not_make_is_invalid(text: str) -> None:
    made = {encode_cursor(KEY, "agr-1", seq) for seq in range(3)}
    if text not in made:
        with pytest.raises(InvalidArgument):
            decode_cursor(KEY, "agr-1", text)


def test_one_text_per_cursor() -> None:
    text = encode_cursor(KEY, "agr-1", 7)
    for variant in (text + "=", text + "==", text.replace("-", "+").replace("_", "/"), " " + text):
        if variant != text:
            _refused(KEY, "agr-1", variant)
    # The same bytes with other low bits in the last character: not the same cursor.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(text[-1])
    for other in alphabet:
        if other != text[-1] and alphabet.index(other) >> 2 == last >> 2:
            _refused(KEY, "agr-1", text[:-1] + other)


def test_a_seq_out_of_range_is_not_encoded() -> None:
    for seq in (-1, MAX_SEQ + 1):
        with pytest.raises(ValueError, match="seq"):
            encode_cursor(KEY, "agr-1", seq)
