"""Times in agreements and audit entries are written by domain/timestamps.canonical_timestamp
(docs/canonical.md), and an agreement already signed still covers the same bytes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.domain.agreements import FORMAT, Agreement
from credit_gateway.domain.audit import AuditEntry
from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.errors import DomainError

CST = timezone(timedelta(hours=8))
FROM = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)


def document(valid_from: str, valid_until: str) -> dict[str, object]:
    return {
        "format": FORMAT,
        "id": "agr-1",
        "counterparty": "zx-credit",
        "operations": ["inquiry"],
        "items": [],
        "categories": ["registration"],
        "purposes": ["LOAN_APPROVAL"],
        "disclosure_levels": ["open"],
        "subject_kinds": ["legal_person"],
        "quotas": {"calls_per_day": 10, "records_per_day": 100},
        "valid_from": valid_from,
        "valid_until": valid_until,
    }


def times(doc: dict[str, object]) -> tuple[object, object]:
    return doc["valid_from"], doc["valid_until"]


@pytest.mark.parametrize(
    ("valid_from", "written"),
    [
        (FROM, "2026-05-10T08:00:00Z"),
        (FROM + timedelta(milliseconds=500), "2026-05-10T08:00:00.500Z"),
        (FROM + timedelta(microseconds=250_001), "2026-05-10T08:00:00.250001Z"),
    ],
)
def test_an_agreement_in_utc_is_written_as_every_signed_time(
    valid_from: datetime, written: str
) -> None:
    doc = document(valid_from.isoformat(), "2027-05-10T08:00:00Z")
    assert times(Agreement.from_document(doc).to_document()) == (written, "2027-05-10T08:00:00Z")


# What the rendering before canonical_timestamp wrote: isoformat, +00:00 as Z. Instants on a
# whole millisecond are left out: those it wrote with 6 digits, the canonical form with 3.
old_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
).filter(lambda t: t.microsecond == 0 or t.microsecond % 1000 != 0)


@given(old_times)
def test_agreements_signed_before_keep_their_bytes(valid_from: datetime) -> None:
    # An agreement drafted in UTC, or (before drafts were converted) at the offset its author
    # typed: what it was signed over is what verification computes again.
    for start in (valid_from, valid_from.astimezone(CST)):
        written = start.isoformat().replace("+00:00", "Z")
        until = (start + timedelta(days=365)).isoformat().replace("+00:00", "Z")
        doc = document(written, until)
        assert Agreement.from_document(doc).signing_bytes() == canonical_bytes(doc)


def test_an_agreement_time_without_an_offset_is_refused() -> None:
    agreement = Agreement.from_document(document("2026-05-10T08:00:00Z", "2027-05-10T08:00:00Z"))
    naive = FROM.replace(tzinfo=None)
    unzoned = dataclasses.replace(
        agreement, valid_from=naive, valid_until=naive + timedelta(days=1)
    )
    with pytest.raises(DomainError, match="aware"):
        unzoned.to_document()


@pytest.mark.parametrize(
    ("at", "written"),
    [
        (FROM, "2026-05-10T08:00:00Z"),
        (FROM + timedelta(milliseconds=500), "2026-05-10T08:00:00.500Z"),
        (FROM + timedelta(microseconds=123_456), "2026-05-10T08:00:00.123456Z"),
        ((FROM + timedelta(milliseconds=1)).astimezone(CST), "2026-05-10T08:00:00.001Z"),
    ],
)
def test_an_audit_entry_is_at_the_canonical_time(at: datetime, written: str) -> None:
    entry = AuditEntry("inq_1", at, "zx-credit", "QueryOpen", None, "LOAN", (), "REFUSED", ())
    assert f'"at":"{written}"'.encode() in entry.body()
