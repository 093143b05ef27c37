"""Tests for credit_gateway.domain.timestamps: the one rendering of an instant in signed bytes.

The rule (docs/canonical.md): RFC 3339, UTC, `Z`; no fraction for a whole second, 3 digits for a
whole millisecond, 6 otherwise. Checked against the two forms other clients compute it with:
protobuf's JSON form of the Timestamp on the wire, and JavaScript's `Date.toISOString()`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_gateway.adapters.grpc import convert
from credit_gateway.domain.agreements import Agreement, Operation, Quotas
from credit_gateway.domain.canonical import parse_json_object
from credit_gateway.domain.records import Submission, WrittenNotice
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import DomainError, InvalidArgument
from credit_gateway.exchange import agreements as signing

CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(datetime(2026, 5, 10, 8, tzinfo=UTC), "2026-05-10T08:00:00Z", id="whole"),
        pytest.param(
            datetime(2026, 5, 10, 8, 0, 0, 250_000, tzinfo=UTC),
            "2026-05-10T08:00:00.250Z",
            id="milliseconds",
        ),
        pytest.param(
            datetime(2026, 5, 10, 8, 0, 0, 1_000, tzinfo=UTC),
            "2026-05-10T08:00:00.001Z",
            id="one-millisecond",
        ),
        pytest.param(
            datetime(2026, 5, 10, 8, 0, 0, 500_001, tzinfo=UTC),
            "2026-05-10T08:00:00.500001Z",
            id="microseconds",
        ),
        pytest.param(
            datetime(2026, 5, 10, 16, 0, 0, 500_000, tzinfo=CST),
            "2026-05-10T08:00:00.500Z",
            id="+08:00",
        ),
        pytest.param(
            datetime(2026, 5, 9, 23, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            "2026-05-10T05:00:00Z",
            id="-05:30",
        ),
        pytest.param(
            datetime(2026, 5, 10, 0, 30, tzinfo=CST), "2026-05-09T16:30:00Z", id="date-changes"
        ),
        pytest.param(datetime(5, 1, 1, tzinfo=UTC), "0005-01-01T00:00:00Z", id="four-digit-year"),
    ],
)
def test_examples(value: datetime, expected: str) -> None:
    assert canonical_timestamp(value) == expected


def test_a_naive_datetime_is_refused_naming_the_field() -> None:
    with pytest.raises(DomainError, match="occurred_at has no UTC offset") as raised:
        canonical_timestamp(datetime(2026, 5, 10, 8), "occurred_at")
    assert raised.value.reason == "TIMESTAMP_INVALID"


def test_an_instant_before_the_first_utc_datetime_is_refused() -> None:
    with pytest.raises(DomainError) as raised:
        canonical_timestamp(datetime(1, 1, 1, tzinfo=CST))
    assert raised.value.reason == "TIMESTAMP_INVALID"


OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60 - 59, 23 * 60 + 59)
)
AWARE = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS
)
# A Timestamp of 0 seconds and 0 nanos is the field left unset.
WIRE_RANGE = AWARE.filter(lambda v: v != datetime(1970, 1, 1, tzinfo=UTC))


@settings(max_examples=300, deadline=None)
@given(AWARE)
def test_any_aware_datetime_round_trips_to_the_same_instant(value: datetime) -> None:
    text = canonical_timestamp(value)
    assert text.endswith("Z")
    assert "+" not in text
    assert datetime.fromisoformat(text) == value
    fraction = text[len("2026-05-10T08:00:00") : -1]
    assert fraction == "" or (fraction[0] == "." and len(fraction) in (4, 7))
    assert not fraction.endswith("000")  # the shortest of 0, 3 or 6 digits
    # The same instant at another offset is the same string.
    assert canonical_timestamp(value.astimezone(CST)) == text


@settings(max_examples=300, deadline=None)
@given(WIRE_RANGE)
def test_it_is_protobufs_json_form_of_the_timestamp_sent(value: datetime) -> None:
    wire = convert.to_timestamp(value)
    assert canonical_timestamp(value) == wire.ToJsonString()
    received = convert.to_datetime(wire, "occurred_at")
    assert received is not None
    assert canonical_timestamp(received) == canonical_timestamp(value)


def to_iso_string(value: datetime) -> str:
    """JavaScript's Date.prototype.toISOString (ECMA-262 21.4.4.36): always 3 digits."""
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


@settings(max_examples=300, deadline=None)
@given(WIRE_RANGE.map(lambda v: v.replace(microsecond=v.microsecond // 1000 * 1000)))
def test_a_javascript_date_renders_it_with_to_iso_string(value: datetime) -> None:
    js = to_iso_string(value)
    expected = js.removesuffix(".000Z") + "Z" if js.endswith(".000Z") else js
    assert canonical_timestamp(value) == expected


def test_a_timestamp_finer_than_a_microsecond_is_refused_not_cut() -> None:
    with pytest.raises(InvalidArgument) as raised:
        convert.to_datetime(Timestamp(seconds=1_778_400_000, nanos=123_456_789), "occurred_at")
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("occurred_at", "finer than a microsecond: send at most 6 digits")
    ]
    exact = convert.to_datetime(Timestamp(seconds=1_778_400_000, nanos=123_456_000), "occurred_at")
    assert exact == datetime(2026, 5, 10, 8, 0, 0, 123_456, tzinfo=UTC)


# ------------------------------------------------------------------ in a record's signed bytes


def submission(occurred_at: datetime) -> Submission:
    notice = WrittenNotice("N-1", occurred_at)
    return Submission(
        "hubei-amr", "r-1", "ADM.PUNISHMENT", "11010519491231002X", {"a": 1}, occurred_at, notice
    )


@pytest.mark.parametrize(
    ("occurred_at", "signed"),
    [
        pytest.param(
            datetime(2026, 5, 10, 8, 0, 0, 250_000, tzinfo=UTC),
            "2026-05-10T08:00:00.250Z",
            id="milliseconds",
        ),
        pytest.param(
            datetime(2026, 5, 10, 8, 0, 0, 250_001, tzinfo=UTC),
            "2026-05-10T08:00:00.250001Z",
            id="microseconds",
        ),
        pytest.param(datetime(2026, 5, 10, 8, tzinfo=UTC), "2026-05-10T08:00:00Z", id="whole"),
        pytest.param(
            datetime(2026, 5, 10, 16, 0, 0, 250_000, tzinfo=CST),
            "2026-05-10T08:00:00.250Z",
            id="+08:00",
        ),
    ],
)
def test_record_signing_bytes(occurred_at: datetime, signed: str) -> None:
    data = submission(occurred_at).signing_bytes()
    assert parse_json_object(data)["occurred_at"] == signed
    assert data == (
        b'{"format":"credit-gateway/record/v2","item":"ADM.PUNISHMENT",'
        b'"notice":{"delivered_at":"' + signed.encode() + b'","number":"N-1"},'
        b'"occurred_at":"' + signed.encode() + b'",'
        b'"payload":{"a":1},"provider":"hubei-amr","provider_record_id":"r-1",'
        b'"subject":"11010519491231002X","subject_kind":null}'
    )


def test_record_signing_bytes_refuse_a_naive_time() -> None:
    with pytest.raises(DomainError, match="occurred_at"):
        submission(datetime(2026, 5, 10, 8)).signing_bytes()


def test_the_record_a_javascript_signer_sent_is_signed_as_it_wrote_it() -> None:
    # Item 8: `new Date("2026-05-10T08:00:00.250Z")` arrives as seconds + nanos.
    wire = Timestamp(seconds=1_778_400_000, nanos=250_000_000)
    received = convert.to_datetime(wire, "occurred_at")
    assert received is not None
    data = submission(received).signing_bytes()
    assert b'"occurred_at":"2026-05-10T08:00:00.250Z"' in data


# ------------------------------------------------------------------ in an agreement's draft


def test_an_agreement_drafted_at_plus_eight_is_drafted_and_signed_in_utc() -> None:
    # `agreements draft --valid-from 2026-05-10T08:00:00+08:00`: the offset the operator typed
    # never reaches the signed bytes.
    drafted = signing.draft(
        Agreement(
            id="agr-1",
            counterparty="zx-credit",
            operations=frozenset({Operation.INQUIRY}),
            items=frozenset({"ADM.PUNISHMENT"}),
            categories=frozenset(),
            purposes=frozenset({"LOAN_APPROVAL"}),
            levels=frozenset(),
            subject_kinds=frozenset(),
            quotas=Quotas(1, 1),
            valid_from=datetime(2026, 5, 10, 8, tzinfo=CST),
            valid_until=datetime(2027, 5, 10, 8, tzinfo=CST),
        )
    )
    terms = drafted["agreement"]
    assert (terms["valid_from"], terms["valid_until"]) == (
        "2026-05-10T00:00:00Z",
        "2027-05-10T00:00:00Z",
    )
    center = ec.generate_private_key(ec.SECP256R1())
    signed = signing.sign(drafted, "center", center)
    assert signed["agreement"] == terms
    assert b"+08:00" not in Agreement.from_document(terms).signing_bytes()
