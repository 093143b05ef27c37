"""Tests for credit_gateway.domain.canonical: RFC 8785 (JCS) canonical bytes, strict parsing,
and set-valued members (a consent artefact's items and categories).

Vectors are RFC 8785's own: section 3.2.2 (the full example), section 3.2.3 (member sorting by
UTF-16 code units) and Appendix B (number serialisation, given there as IEEE 754 bit patterns,
reproduced here from those bit patterns so every value is exact). canonical_bytes is the
`rfc8785` library behind our own checks, with a faster road through the standard JSON encoder
for most values: these vectors are what both must pass, and a property test below holds the
faster road to rfc8785's bytes, or its refusal, on arbitrary values.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
import rfc8785
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_gateway.adapters.grpc import convert
from credit_gateway.adapters.grpc.v1 import consent_pb2
from credit_gateway.domain.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalError,
    canonical_bytes,
    parse_json_object,
    string_set,
)
from credit_gateway.domain.catalog import Category
from credit_gateway.domain.consent import artefact_bytes


def _number(value: float) -> str:
    """How canonical_bytes writes one number (RFC 8785 section 3.2.2.3)."""
    return canonical_bytes(value).decode()


def from_bits(hex_bits: str) -> float:
    """The double whose IEEE 754 big-endian bit pattern is `hex_bits` (RFC 8785 Appendix B)."""
    value: float = struct.unpack(">d", bytes.fromhex(hex_bits))[0]
    return value


# ------------------------------------------------------------------ RFC 8785 section 3.2.3

# The sorting example. Python has no UTF-16 surrogate pairs in str: the emoji the RFC writes as
# "\ud83d\ude00" is the one code point U+1F600 here.
SORTING_INPUT: dict[str, str] = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\U0001f600": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaerisis",
}
SORTING_OUTPUT = (
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
    '"\u00f6":"Latin Small Letter O With Diaerisis","\u20ac":"Euro Sign",'
    '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
)


def test_rfc8785_sorting_example() -> None:
    assert canonical_bytes(SORTING_INPUT) == SORTING_OUTPUT.encode("utf-8")


def test_sorting_is_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+FB33; by code point it would be after.
    value = {"\ufb33": 1, "\U0001f600": 2}
    assert canonical_bytes(value) == '{"\U0001f600":2,"\ufb33":1}'.encode()
    assert sorted(value) == ["\ufb33", "\U0001f600"]  # what a naive sort would have done


def test_sorting_does_not_depend_on_insertion_order() -> None:
    reversed_input = dict(reversed(list(SORTING_INPUT.items())))
    assert canonical_bytes(reversed_input) == canonical_bytes(SORTING_INPUT)


def test_nested_objects_are_sorted_and_arrays_keep_their_order() -> None:
    value = {"b": [3, 1, {"z": 0, "a": None}], "a": {"y": True, "x": False}}
    assert canonical_bytes(value) == b'{"a":{"x":false,"y":true},"b":[3,1,{"a":null,"z":0}]}'


# ------------------------------------------------------------------ RFC 8785 section 3.2.2

RFC_3_2_2_INPUT = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
    ' "literals": [null, true, false]}'
)
RFC_3_2_2_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)


def test_rfc8785_full_example() -> None:
    assert canonical_bytes(json.loads(RFC_3_2_2_INPUT)) == RFC_3_2_2_OUTPUT.encode("utf-8")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("\x00", '"\\u0000"', id="nul"),
        pytest.param("\x08\t\n\x0c\r", '"\\b\\t\\n\\f\\r"', id="short-escapes"),
        pytest.param("\x0b\x1f", '"\\u000b\\u001f"', id="control-lowercase-hex"),
        pytest.param('"\\', '"\\"\\\\"', id="quote-backslash"),
        pytest.param("/\x7f", '"/\x7f"', id="solidus-and-del-verbatim"),
        pytest.param("\u2028\u2029", '"\u2028\u2029"', id="line-separators-verbatim"),
        pytest.param("\u00e9\u4e2d\U0001f600", '"\u00e9\u4e2d\U0001f600"', id="non-ascii-verbatim"),
    ],
)
def test_string_escaping(value: str, expected: str) -> None:
    assert canonical_bytes(value) == expected.encode("utf-8")


def test_literals_and_no_whitespace() -> None:
    assert canonical_bytes([None, True, False, [], {}]) == b"[null,true,false,[],{}]"
    assert canonical_bytes((1, 2)) == b"[1,2]"  # any sequence is an array


# ------------------------------------------------------------------ RFC 8785 Appendix B

APPENDIX_B: list[tuple[str, str]] = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),  # min pos number
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),  # max pos number
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),  # max pos int (2**53)
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),  # ~2**68
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),  # round to even
]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B, ids=[b for b, _ in APPENDIX_B])
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    value = from_bits(bits)
    assert _number(value) == expected
    assert canonical_bytes(value) == expected.encode()
    assert canonical_bytes([value]) == f"[{expected}]".encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (333333333.3333333, "333333333.3333333"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (float(2**53), "9007199254740992"),
        (295147905179352830000.0, "295147905179352830000"),
        (4.5, "4.5"),
        (0.002, "0.002"),
        (1e30, "1e+30"),
        (-1.5, "-1.5"),
        (100.0, "100"),
        (0.1, "0.1"),
        (123456789012345680000.0, "123456789012345680000"),
        (1.5e-10, "1.5e-10"),
    ],
    ids=repr,
)
def test_number_serialisation_table(value: float, expected: str) -> None:
    assert _number(value) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)
    with pytest.raises(CanonicalError):
        canonical_bytes({"a": [value]})


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0, 1, -1])
def test_integers_in_the_exact_range_are_written_plainly(value: int) -> None:
    assert MAX_SAFE_INTEGER == 2**53 - 1
    assert canonical_bytes(value) == str(value).encode()


@pytest.mark.parametrize("value", [2**53, -(2**53), 2**64, -(2**100)])
def test_integers_beyond_the_exact_range_are_refused(value: int) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)
    with pytest.raises(CanonicalError):
        canonical_bytes({"n": value})


def test_booleans_are_literals_not_integers() -> None:
    assert canonical_bytes({"t": True, "f": False}) == b'{"f":false,"t":true}'


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {None: "a"}, {("a",): 1}, {"ok": {2.5: "x"}}],
    ids=["int-key", "none-key", "tuple-key", "nested-float-key"],
)
def test_non_string_keys_are_refused(value: dict[Any, Any]) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


@pytest.mark.parametrize(
    "value",
    ["\ud800", "a\udfffb", {"\ud83d": 1}, ["ok", "\ude00"], "\ud83d\ude00"],
    ids=["lead", "trail-inside", "key", "in-array", "pair-as-two-code-points"],
)
def test_lone_surrogates_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


@pytest.mark.parametrize(
    "value",
    [b"bytes", bytearray(b"x"), {1, 2}, object(), 1 + 2j],
    ids=["bytes", "bytearray", "set", "object", "complex"],
)
def test_non_json_values_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


# ------------------------------------------------------------------ parse_json_object


def test_parse_json_object_accepts_an_object() -> None:
    assert parse_json_object(b'{"a": [1, 2.5, "x", null, true], "b": {"c": {}}}') == {
        "a": [1, 2.5, "x", None, True],
        "b": {"c": {}},
    }


@pytest.mark.parametrize(
    "data",
    [b'{"a": 1, "a": 2}', b'{"a": {"b": 1, "b": 1}}', b'[{"a": 1, "a": 1}]'],
    ids=["top", "nested", "in-array"],
)
def test_parse_json_object_refuses_duplicate_keys(data: bytes) -> None:
    with pytest.raises(CanonicalError):
        parse_json_object(data)


@pytest.mark.parametrize(
    "data",
    [b"[]", b"1", b'"x"', b"null", b"true"],
    ids=["array", "number", "string", "null", "bool"],
)
def test_parse_json_object_refuses_non_objects(data: bytes) -> None:
    with pytest.raises(CanonicalError, match="not a JSON object"):
        parse_json_object(data)


@pytest.mark.parametrize(
    "data",
    [b'{"a": "\xff"}', b'{"a": "\xc3"}', '{"a": 1}'.encode("utf-16"), b'{"a": "\xed\xa0\x80"}'],
    ids=["invalid-byte", "truncated", "utf-16", "encoded-surrogate"],
)
def test_parse_json_object_refuses_non_utf8(data: bytes) -> None:
    with pytest.raises(CanonicalError):
        parse_json_object(data)


@pytest.mark.parametrize(
    "data",
    [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": [1, NaN]}'],
    ids=["nan", "inf", "-inf", "nested-nan"],
)
def test_parse_json_object_refuses_nan_and_infinity(data: bytes) -> None:
    with pytest.raises(CanonicalError):
        parse_json_object(data)


@pytest.mark.parametrize("data", [b'{"a": 1e400}', b'{"a": -1e400}'], ids=["1e400", "-1e400"])
def test_parse_json_object_refuses_numbers_that_overflow_to_infinity(data: bytes) -> None:
    with pytest.raises(CanonicalError):
        parse_json_object(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"a": 1} x', b"{'a': 1}", b'\xef\xbb\xbf{"a": 1}', b'{"a": "\x01"}'],
    ids=["empty", "truncated", "trailing", "single-quotes", "bom", "raw-control-char"],
)
def test_parse_json_object_refuses_malformed_json(data: bytes) -> None:
    with pytest.raises(CanonicalError):
        parse_json_object(data)


# ------------------------------------------------------------------ properties

SAFE_INTEGERS = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
FINITE_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | SAFE_INTEGERS | FINITE_FLOATS | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES)
def test_canonical_bytes_round_trip_through_json(value: Any) -> None:
    # JCS numbers are doubles, so read every number back as one; == then compares by value
    # (1.0 == 1, -0.0 == 0), which is what JCS promises.
    assert json.loads(canonical_bytes(value), parse_int=float) == value


# Every finite double round trips: integral ones beyond 2**53 are written as integers and read
# back as the doubles they denote (test_large_integral_doubles_survive_a_parse_round_trip).
PARSE_SAFE_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
PARSE_SAFE_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | SAFE_INTEGERS | PARSE_SAFE_FLOATS | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(TEXT, PARSE_SAFE_VALUES, max_size=5))
def test_canonical_bytes_is_idempotent_through_a_parse(value: dict[str, Any]) -> None:
    once = canonical_bytes(value)
    assert canonical_bytes(parse_json_object(once)) == once


@pytest.mark.parametrize(
    "value", [1e20, float(2**53), 2.581429871088513e16], ids=["1e20", "2**53", "2.58e16"]
)
def test_large_integral_doubles_survive_a_parse_round_trip(value: float) -> None:
    once = canonical_bytes({"n": value})
    assert canonical_bytes(parse_json_object(once)) == once


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(TEXT, st.integers(0, 9), min_size=1, max_size=8))
def test_members_sorted_by_utf16_code_units(value: dict[str, int]) -> None:
    keys = list(json.loads(canonical_bytes(value)))
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))


@settings(max_examples=300, deadline=None)
@given(FINITE_FLOATS)
def test_number_formatting_round_trips(value: float) -> None:
    text = _number(value)
    assert float(text) == value
    assert text == _number(float(text))  # one value, one form


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_integral_floats_in_range_are_written_without_fraction_or_exponent(value: int) -> None:
    assert _number(float(value)) == str(value)


# ------------------------------------------------------------------ set-valued members


def test_string_set_sorts_by_utf16_code_units_and_keeps_each_once() -> None:
    assert string_set(["b", "a", "b", "C"]) == ["C", "a", "b"]
    # As for object members: U+1F600 (D83D DE00) sorts before U+FB33, unlike a code-point sort.
    assert string_set(["\ufb33", "\U0001f600"]) == ["\U0001f600", "\ufb33"]
    assert string_set([]) == []


def _pb_terms(items: list[str], categories: list[str]) -> consent_pb2.ConsentTerms:
    def at(seconds: int, nanos: int = 0) -> Timestamp:
        return Timestamp(seconds=seconds, nanos=nanos)

    return consent_pb2.ConsentTerms(
        grantee="zx-credit",
        purpose_code="LOAN_APPROVAL",
        purpose_text="mortgage application",
        item_codes=items,
        categories=categories,
        data_from=at(1_746_000_000, 125_000_000),
        data_to=at(1_778_400_000),
        valid_from=at(1_778_396_400),
        valid_until=at(1_780_988_400),
        max_uses=5,
    )


ITEMS = ["TAX.PAID", "ADM.PUNISHMENT", "NP.INCOME", "JUD.EXECUTION", "A-1", "A.1", "A_1"]
CATEGORIES = [c.value for c in Category]


def test_the_artefact_lists_items_and_categories_sorted() -> None:
    terms = convert.terms_from_pb(
        _pb_terms(["TAX.PAID", "ADM.PUNISHMENT"], ["judicial", "administrative_punishment"])
    )
    signed = parse_json_object(artefact_bytes("11010519491231002X", terms))
    assert signed["terms"]["items"] == ["ADM.PUNISHMENT", "TAX.PAID"]
    assert signed["terms"]["categories"] == ["administrative_punishment", "judicial"]
    assert signed["terms"]["data_range"] == ["2025-04-30T08:00:00.125Z", "2026-05-10T08:00:00Z"]


@settings(max_examples=150, deadline=None)
@given(
    st.permutations(ITEMS),
    st.permutations(CATEGORIES),
    st.integers(0, len(ITEMS)),
    st.integers(0, len(CATEGORIES)),
    st.lists(st.sampled_from(ITEMS), max_size=3),
)
def test_the_artefact_does_not_depend_on_the_order_the_request_lists_sets_in(
    items: list[str], categories: list[str], n_items: int, n_categories: int, again: list[str]
) -> None:
    """What the subject signs is the same bytes whichever order (and with whatever repeats) the
    GrantConsent request names its items and categories: the gateway sorts before verifying."""
    chosen_items, chosen_categories = items[:n_items], categories[:n_categories]
    repeated = chosen_items + [i for i in again if i in chosen_items]
    shuffled = convert.terms_from_pb(_pb_terms(repeated, chosen_categories))
    in_order = convert.terms_from_pb(_pb_terms(sorted(chosen_items), sorted(chosen_categories)))
    signed = artefact_bytes("11010519491231002X", shuffled)
    assert signed == artefact_bytes("11010519491231002X", in_order)
    terms = parse_json_object(signed)["terms"]
    assert terms["items"] == sorted(set(chosen_items))
    assert terms["categories"] == sorted(chosen_categories)


# --------------------------------------------------------- the faster road gives rfc8785's bytes

# Every kind of character the two roads could treat apart: controls (escaped), quote and
# backslash, DEL and U+2028 (not escaped), the top of the BMP against astral characters (key
# order) and lone surrogates (refused).
AWKWARD = st.sampled_from(
    [
        "\x00",
        "\x1f",
        "\b",
        "\f",
        '"',
        "\\",
        "\x7f",
        "\u2028",
        "\ufb33",
        "\uffff",
        "\U0001f600",
        "\ud800",
    ]
)
ANY_TEXT = st.text(st.characters(codec="utf-8") | AWKWARD, max_size=8)
ANY_NUMBER = (
    st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.just(float("inf"))
)
ANY_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | ANY_NUMBER | ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=20,
)


def _reference(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        return CanonicalError


@settings(max_examples=500, deadline=None)
@given(ANY_VALUES)
def test_canonical_bytes_are_rfc8785s_bytes_or_its_refusal(value: Any) -> None:
    try:
        ours: bytes | type[Exception] = canonical_bytes(value)
    except CanonicalError:
        ours = CanonicalError
    assert ours == _reference(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Code-point order puts the emoji last; UTF-16 code units put it first.
        ({"\uffff": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\uffff":1}'),
        ({"a": 1.0, "b": 1e21}, '{"a":1,"b":1e+21}'),  # Python's repr would write 1.0
        ({"b": True, "a": [None, (1, "\x1f")]}, '{"a":[null,[1,"\\u001f"]],"b":true}'),
    ],
    ids=["astral-key", "floats", "plain"],
)
def test_what_each_road_writes(value: Any, expected: str) -> None:
    assert canonical_bytes(value) == expected.encode() == rfc8785.dumps(value)


def test_a_plain_value_never_reaches_rfc8785(monkeypatch: pytest.MonkeyPatch) -> None:
    def slower_road(value: Any) -> bytes:
        raise AssertionError("a plain value went through rfc8785")

    monkeypatch.setattr(rfc8785, "dumps", slower_road)
    assert canonical_bytes({"b": [1, "x", None], "a": {"c": False}}) == (
        b'{"a":{"c":false},"b":[1,"x",null]}'
    )
