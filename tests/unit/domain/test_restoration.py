"""A credit restoration decision's signed form (docs/canonical.md, "Restoration decisions") and
the checks of Art 30 and 31 (domain/restoration.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.crypto.signatures import sign_es256, verify_es256
from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.catalog import Catalog, Period
from credit_gateway.domain.records import notice_number_problem
from credit_gateway.domain.restoration import (
    FORMAT,
    MAX_BASIS,
    RestorationDecision,
    check_decided,
    check_deletable,
    check_restorable,
    check_timing,
    disclosure_end,
    earliest_restoration,
)
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import FailedPrecondition, InvalidArgument

CATALOG_FILE = Path(__file__).resolve().parents[3] / "src/credit_gateway/data/catalog.json"
DOC = Path(__file__).resolve().parents[3] / "docs/canonical.md"
BUNDLED = Catalog.from_document(json.loads(CATALOG_FILE.read_text()))
AT = datetime(2026, 5, 10, 8, tzinfo=UTC)
DAY = timedelta(days=1)
# A document number (发文字号) as GB/T 9704-2012 7.2.4 writes one: its year in tortoise shells.
NUMBER = "鄂市监信修〔2026〕7号"  # noqa: RUF001


def decision(**changes: Any) -> RestorationDecision:
    fields: dict[str, Any] = {
        "provider_id": "hubei-amr",
        "provider_record_id": "pun-1",
        "decision_number": NUMBER,
        "decided_at": datetime(2026, 5, 10, 16, 0, 0, 250000, tzinfo=timezone(timedelta(hours=8))),
        "basis": "the fine was paid (Art 30 (1))",
    }
    return RestorationDecision(**{**fields, **changes})


# --- the signed document -----------------------------------------------------------------------


def test_the_worked_example_in_docs_canonical_md() -> None:
    expected = (
        '{"basis":"the fine was paid (Art 30 (1))",'
        '"decided_at":"2026-05-10T08:00:00.250Z",'
        f'"decision_number":"{NUMBER}",'
        '"format":"credit-gateway/restoration/v1",'
        '"provider":"hubei-amr","provider_record_id":"pun-1"}'
    ).encode()
    assert decision().signing_bytes() == expected
    section = DOC.read_text(encoding="utf-8").split("## Restoration decisions", 1)[1]
    assert f"    {expected.decode()}\n" in section  # the page shows these very bytes
    assert f"these {len(expected)} bytes" in section


def test_a_provider_signature_over_the_bytes_verifies() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = decision().signing_bytes()
    verify_es256(key.public_key(), data, sign_es256(key, data), what="restoration decision")


NUMBERS = (
    st.text(st.characters(categories=("L", "M", "N", "P", "S")), max_size=30)
    .map(lambda text: text + "7")
    .filter(lambda number: notice_number_problem(number) is None)
)
OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
DECISIONS = st.builds(
    RestorationDecision,
    provider_id=st.text(min_size=1, max_size=64),
    provider_record_id=st.text(min_size=1, max_size=128).filter(lambda s: "\x00" not in s),
    decision_number=NUMBERS,
    decided_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=OFFSETS
    ),
    basis=st.text(min_size=1, max_size=200).filter(str.strip),
)


@given(DECISIONS)
def test_the_bytes_are_the_canonical_json_of_the_six_members(d: RestorationDecision) -> None:
    data = d.signing_bytes()
    assert data == canonical_bytes(d.signing_document())
    assert json.loads(data) == {
        "format": FORMAT,
        "provider": d.provider_id,
        "provider_record_id": d.provider_record_id,
        "decision_number": d.decision_number,
        "decided_at": canonical_timestamp(d.decided_at),
        "basis": d.basis,
    }
    assert datetime.fromisoformat(json.loads(data)["decided_at"]) == d.decided_at


@given(DECISIONS, OFFSETS)
def test_the_same_instant_at_another_offset_is_the_same_bytes(
    d: RestorationDecision, offset: timezone
) -> None:
    moved = decision(**{**_fields(d), "decided_at": d.decided_at.astimezone(offset)})
    assert moved.signing_bytes() == d.signing_bytes()


@given(DECISIONS, DECISIONS)
def test_different_decisions_are_different_bytes(
    a: RestorationDecision, b: RestorationDecision
) -> None:
    if _fields(a) != _fields(b):  # aware datetimes compare as instants
        assert a.signing_bytes() != b.signing_bytes()


def _fields(d: RestorationDecision) -> dict[str, Any]:
    return {
        "provider_id": d.provider_id,
        "provider_record_id": d.provider_record_id,
        "decision_number": d.decision_number,
        "decided_at": d.decided_at,
        "basis": d.basis,
    }


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"provider_record_id": ""}, "provider_record_id", "MISSING_FIELD"),
        ({"provider_record_id": "r" * 129}, "provider_record_id", "FIELD_TOO_LONG"),
        ({"provider_record_id": "r\x00"}, "provider_record_id", "UNSTORABLE_TEXT"),
        ({"decision_number": ""}, "decision_number", "DECISION_NUMBER_INVALID"),
        ({"decision_number": "RD"}, "decision_number", "DECISION_NUMBER_INVALID"),
        ({"decision_number": "RD-1\u200b"}, "decision_number", "DECISION_NUMBER_INVALID"),
        ({"decision_number": "7" * 129}, "decision_number", "FIELD_TOO_LONG"),
        ({"basis": " \n"}, "basis", "MISSING_FIELD"),
        ({"basis": "b" * (MAX_BASIS + 1)}, "basis", "FIELD_TOO_LONG"),
        ({"basis": "lone \ud800"}, "", "BAD_JSON"),
        ({"decided_at": datetime(2026, 5, 10)}, "", "TIMESTAMP_INVALID"),
    ],
)
def test_a_malformed_decision_is_never_built(
    changes: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        decision(**changes)
    assert refused.value.reason == reason
    assert [v.field for v in refused.value.violations] == ([field] if field else [])


def test_the_longest_texts_are_taken() -> None:
    decision(provider_record_id="r" * 128, decision_number="7" * 128, basis="b" * MAX_BASIS)


def test_a_decision_is_not_taken_after_it_is_submitted() -> None:
    d = decision()
    check_decided(d, d.decided_at)
    with pytest.raises(InvalidArgument) as refused:
        check_decided(d, d.decided_at - timedelta(microseconds=1))
    assert refused.value.reason == "INVALID_TIME"


# --- Art 30: what may be restored, and when ---------------------------------------------------


def test_only_untrustworthiness_information_is_restored() -> None:
    punishment = BUNDLED.items["ADM.PUNISHMENT"]
    assert check_restorable("ADM.PUNISHMENT", punishment) is punishment
    for code in ("ADM.PERMIT", "COM.VOLUNTEER", "REG.ENTERPRISE", "NOT.CATALOGUED"):
        with pytest.raises(FailedPrecondition) as refused:
            check_restorable(code, BUNDLED.item(code))
        assert refused.value.reason == "NOT_UNTRUSTWORTHY"


@pytest.mark.parametrize(("severity", "shortest"), [("general", 90), ("serious", 365), (None, 0)])
def test_the_earliest_restoration_is_the_shortest_period_of_the_severity(
    severity: str | None, shortest: int
) -> None:
    payload = {} if severity is None else {"severity": severity}
    period = BUNDLED.items["ADM.PUNISHMENT"].period_for(payload)
    earliest = AT + shortest * DAY
    assert earliest_restoration(AT, period) == earliest
    check_timing(decision(decided_at=earliest), AT, period)
    with pytest.raises(FailedPrecondition) as refused:
        check_timing(decision(decided_at=earliest - timedelta(microseconds=1)), AT, period)
    assert refused.value.reason == "RESTORATION_TOO_EARLY"
    assert canonical_timestamp(earliest) in refused.value.message


def test_a_decision_before_the_record_occurred_is_too_early_and_says_so() -> None:
    with pytest.raises(FailedPrecondition) as refused:
        check_timing(decision(decided_at=AT - DAY), AT, Period(0, 365))
    assert refused.value.reason == "RESTORATION_TOO_EARLY"
    assert "before the record occurred" in refused.value.message


@given(
    st.integers(0, 2000),
    st.integers(-3000, 3000),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=OFFSETS),
)
def test_a_restoration_is_timely_exactly_from_the_shortest_period_on(
    shortest: int, hours: int, occurred: datetime
) -> None:
    period = Period(shortest, max(shortest, 1))
    at = occurred + timedelta(hours=hours)
    timely = at >= occurred + shortest * DAY
    try:
        check_timing(decision(decided_at=at), occurred, period)
    except FailedPrecondition:
        assert not timely
    else:
        assert timely


def test_a_restoration_ends_the_disclosure_early_never_later() -> None:
    d = decision()
    assert disclosure_end(d.decided_at + DAY, d) == d.decided_at
    assert disclosure_end(d.decided_at - DAY, d) == d.decided_at - DAY


# --- Art 31: what is deleted on application ---------------------------------------------------


def test_only_commendations_volunteer_service_and_donations_are_deleted_on_application() -> None:
    check_deletable("COM.VOLUNTEER", BUNDLED.items["COM.VOLUNTEER"])
    for code in ("ADM.PERMIT", "ADM.PUNISHMENT", "REG.ENTERPRISE", "NOT.CATALOGUED"):
        with pytest.raises(FailedPrecondition) as refused:
            check_deletable(code, BUNDLED.item(code))
        assert refused.value.reason == "NOT_DELETABLE_ON_APPLICATION"
