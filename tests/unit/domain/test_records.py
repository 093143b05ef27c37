"""A submitted record's signed form (tests/vectors/records.json), the Art 22 notice number's
rules, and the text no database can store (domain/records.py)."""

from __future__ import annotations

import base64
import hashlib
import string
import unicodedata
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc.jwk import ECKey
from support import vectors
from support.vectors import Case

from credit_gateway.crypto.signatures import verify_es256
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.records import (
    MAX_TEXT,
    Submission,
    WrittenNotice,
    notice_number_problem,
    unstorable,
)


def submission(document: dict[str, Any]) -> Submission:
    """The Submission a vector's signed document is of."""
    notice = document["notice"]
    kind = document["subject_kind"]
    return Submission(
        document["provider"],
        document["provider_record_id"],
        document["item"],
        document["subject"],
        document["payload"],
        datetime.fromisoformat(document["occurred_at"]),
        None
        if notice is None
        else WrittenNotice(notice["number"], datetime.fromisoformat(notice["delivered_at"])),
        None if kind is None else SubjectKind(kind),
    )


@vectors.parametrize("records")
def test_the_record_vectors(case: Case) -> None:
    data = submission(case["document"]).signing_bytes()
    assert data == case["canonical"].encode()
    assert hashlib.sha256(data).hexdigest() == case["sha256"]
    public = ECKey.import_key(case["jwk"]).get_op_key("verify")
    signature = base64.urlsafe_b64decode(case["signature"] + "==")
    verify_es256(public, data, signature, what="record")


# --- the notice number (Art 22) ---------------------------------------------------------------

NOT_NUMBERS = {
    "empty": "",
    "a space": " ",
    "a tab": "\t",
    "one letter": "x",
    "one digit": "7",
    "no digit": "NOTICE",
    "punctuation only": "--",
    "zero-width space": "\u200b",
    "zero-width space around a number": "\u200bN-1\u200b",
    "a zero-width joiner inside": "N\u200d-1",
    "byte order mark": "\ufeffN-1",
    "right-to-left mark": "N-1\u200f",
    "a tab inside": "N\t1",
    "a newline": "N-1\n",
    "no-break space inside": "N\u00a01",
    "ideographic space": "\u3000\u3000",
    "leading space": " N-1",
    "trailing space": "N-1 ",
    "private use": "N-1\ue000",
}
# An official document number (发文字号) in its brackets, U+3014 and U+3015; a fullwidth digit.
NUMBERS = [
    "N-1",
    "17",
    "NOTICE-17",
    "鄂汉市监罚告\u30142026\u301517号",
    "AMR N 2026/17",
    "é-1",
    "N-\uff11",
]


@pytest.mark.parametrize("text", NOT_NUMBERS.values(), ids=NOT_NUMBERS.keys())
def test_what_is_not_a_notice_number(text: str) -> None:
    assert notice_number_problem(text) is not None


@pytest.mark.parametrize("text", NUMBERS)
def test_notice_numbers(text: str) -> None:
    assert notice_number_problem(text) is None


_VISIBLE = st.characters(categories=("L", "M", "N", "P", "S"))


@given(
    st.text(_VISIBLE, max_size=60), st.text(_VISIBLE, max_size=60), st.sampled_from("0123456789")
)
def test_visible_text_with_a_digit_is_a_notice_number(head: str, tail: str, digit: str) -> None:
    assert notice_number_problem(head + digit + tail + "x") is None


@given(
    st.text(_VISIBLE, max_size=20),
    st.characters(categories=("Cc", "Cf", "Co", "Zs", "Zl", "Zp"), exclude_characters=" "),
    st.text(_VISIBLE, max_size=20),
)
def test_an_invisible_character_anywhere_is_refused(head: str, invisible: str, tail: str) -> None:
    problem = notice_number_problem(f"N{head}{invisible}{tail}1")
    assert problem is not None
    assert unicodedata.category(invisible)[0] in "CZ"


@given(st.text(st.sampled_from(string.whitespace), max_size=10))
def test_whitespace_alone_is_blank(text: str) -> None:
    assert notice_number_problem(text) == "blank"


def test_the_notice_is_signed_with_its_delivery_time() -> None:
    at = datetime.fromisoformat("2026-05-10T08:00:00.250Z")
    later = datetime.fromisoformat("2026-05-11T08:00:00Z")
    signed = Submission("p", "r", "I", "S", {}, at, WrittenNotice("N-1", at)).signing_document()
    assert signed["notice"] == {"number": "N-1", "delivered_at": "2026-05-10T08:00:00.250Z"}
    other = Submission("p", "r", "I", "S", {}, at, WrittenNotice("N-1", later))
    assert other.signing_bytes() != Submission("p", "r", "I", "S", {}, at, None).signing_bytes()


# --- text a database can store (issue #11 item 6) ----------------------------------------------


@given(st.text(max_size=MAX_TEXT))
def test_only_nul_is_unstorable(text: str) -> None:
    assert (unstorable(text) is not None) == ("\x00" in text)


def test_four_byte_characters_are_storable() -> None:
    assert unstorable("rec-\U0001f600-\U0010ffff") is None
