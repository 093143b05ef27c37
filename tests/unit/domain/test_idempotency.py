"""The idempotency key, the request fingerprint and the recorded answer (domain/idempotency.py,
domain/release.py InquiryResult.to_bytes): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.domain.idempotency import RETENTION, Keyed, Recorded, check_key, fingerprint
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.release import InquiryResult, Released, WithheldSummary
from credit_gateway.errors import InvalidArgument

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=128)


def refused(values: list[str]) -> str:
    with pytest.raises(InvalidArgument) as caught:
        check_key(values)
    return caught.value.reason


@given(PRINTABLE.filter(lambda k: k == k.strip(" ")))
def test_any_printable_ascii_key_up_to_128_is_taken_as_sent(key: str) -> None:
    assert check_key([key]) == key


@given(st.text(min_size=1, max_size=200))
def test_a_key_is_taken_exactly_when_it_is_well_formed(key: str) -> None:
    well_formed = len(key) <= 128 and all(" " <= c <= "~" for c in key) and key == key.strip(" ")
    if well_formed:
        assert check_key([key]) == key
    else:
        assert refused([key]) == "IDEMPOTENCY_KEY_INVALID"


@pytest.mark.parametrize(
    "values", [[""], ["k" * 129], ["tab\t"], ["é"], ["\x00"], ["a", "b"], [" x"]]
)
def test_a_malformed_key_is_refused_with_its_reason(values: list[str]) -> None:
    assert refused(values) == "IDEMPOTENCY_KEY_INVALID"


def test_no_header_is_no_key() -> None:
    assert check_key([]) is None


REQUEST: dict[str, object] = {
    "method": "QueryAuthorized",
    "subject_lookup": "lookup-person",
    "kind": SubjectKind.NATURAL_PERSON,
    "items": ("ADM.PUNISHMENT",),
    "purpose": "LOAN_APPROVAL",
    "agreement_id": "agr-zx",
    "consent_token": "a.b.c",
}
CHANGES: dict[str, object] = {
    "method": "QueryOpen",
    "subject_lookup": "lookup-company",
    "kind": SubjectKind.LEGAL_PERSON,
    "items": ("ADM.PUNISHMENT", "TAX.PAID"),
    "purpose": "SUPERVISION",
    "agreement_id": None,
    "consent_token": "a.b.d",
}


@pytest.mark.parametrize("name", CHANGES)
def test_the_fingerprint_changes_with_every_part_of_the_request(name: str) -> None:
    assert fingerprint(**REQUEST) == fingerprint(**REQUEST)  # type: ignore[arg-type]
    changed = {**REQUEST, name: CHANGES[name]}
    assert fingerprint(**changed) != fingerprint(**REQUEST)  # type: ignore[arg-type]


def test_the_answer_is_sealed_to_caller_method_and_key() -> None:
    aads = {
        Keyed("zx", "QueryAuthorized", "k").aad(),
        Keyed("zy", "QueryAuthorized", "k").aad(),
        Keyed("zx", "QueryOpen", "k").aad(),
        Keyed("zx", "QueryAuthorized", "k2").aad(),
        Keyed("zx", "QueryAuthorizedk", "").aad(),  # no concatenation collides
    }
    assert len(aads) == 5


def test_an_answer_is_honoured_for_24_hours() -> None:
    recorded = Recorded("f", "inq_1", "k1", b"", NOW)
    assert recorded.honoured(NOW + RETENTION - timedelta(microseconds=1))
    assert not recorded.honoured(NOW + RETENTION)


def test_the_recorded_answer_reads_back_as_it_was() -> None:
    result = InquiryResult(
        "inq_1",
        (
            Released("rec_1", "ADM.PUNISHMENT", "hubei-amr", b'{"a":1}\x00\xff', NOW, ("L1",)),
            Released("rec_2", "ADM.PERMIT", "hubei-amr", b"{}", NOW - timedelta(days=1), ()),
        ),
        (WithheldSummary("TAX.PAID", "NOT_COVERED_BY_CONSENT", 0),),
        ("NO_ONWARD_DISCLOSURE",),
        "agr-zx",
        "cns_1",
    )
    assert InquiryResult.from_bytes(result.to_bytes()) == result
