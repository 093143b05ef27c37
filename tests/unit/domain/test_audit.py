"""The audit entry's body: built by json's C encoder, byte for byte the canonical JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.domain.audit import (
    CONSENT_METHODS,
    MAINTAIN_METHODS,
    NOT_INQUIRIES,
    OPERATOR,
    OPERATOR_METHODS,
    RIGHTS_METHODS,
    SELF,
    AuditEntry,
    decision_entry,
)
from credit_gateway.domain.canonical import CanonicalError, canonical_bytes
from credit_gateway.domain.timestamps import canonical_timestamp

# Any code point: quotes, controls, non-ASCII, astral, and lone surrogates (not by default).
text = st.text(st.characters(exclude_categories=()), max_size=20)
maybe = st.none() | text


def document(entry: AuditEntry) -> dict[str, object]:
    """The body's members as docs/canonical.md names them, for canonical_bytes to write."""
    return {
        "format": "credit-gateway/audit/v1",
        "id": entry.id,
        "at": canonical_timestamp(entry.at),  # its form is tests/unit/domain/test_timestamps.py's
        "caller": entry.caller,
        "method": entry.method,
        "subject": entry.subject_id,
        "purpose": entry.purpose,
        "items": list(entry.items),
        "outcome": entry.outcome,
        "reasons": list(entry.reasons),
        "agreement": entry.agreement_id,
        "consent": entry.consent_id,
        "released": list(entry.released_records),
        "withheld": entry.withheld_records,
        "request": entry.request_id,
    }


@given(
    st.builds(
        AuditEntry,
        id=text,
        at=st.datetimes(timezones=st.just(UTC)),
        caller=text,
        method=text,
        subject_id=maybe,
        purpose=text,
        items=st.lists(text, max_size=4).map(tuple),
        outcome=text,
        reasons=st.lists(text, max_size=4).map(tuple),
        agreement_id=maybe,
        consent_id=maybe,
        released_records=st.lists(text, max_size=4).map(tuple),
        withheld_records=st.integers(0, 2**53 - 1),
        request_id=maybe,
    )
)
def test_the_body_is_the_canonical_json_of_the_entry(entry: AuditEntry) -> None:
    try:
        expected = canonical_bytes(document(entry))
    except CanonicalError:  # a lone surrogate has no UTF-8 form: refused alike
        with pytest.raises(CanonicalError):
            entry.body()
        return
    assert entry.body() == expected


def test_a_release_entry() -> None:
    entry = AuditEntry(
        "inq_1",
        datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC),
        "zx-credit",
        "QueryAuthorized",
        "sbj_1",
        "LOAN_APPROVAL",
        ("ADM.PUNISHMENT",),
        "RELEASED",
        (),
        "agr-1",
        "cns_1",
        ("rec_1",),
    )
    assert entry.body() == (
        b'{"agreement":"agr-1","at":"2026-11-27T10:00:00.123456Z","caller":"zx-credit",'
        b'"consent":"cns_1","format":"credit-gateway/audit/v1","id":"inq_1",'
        b'"items":["ADM.PUNISHMENT"],"method":"QueryAuthorized","outcome":"RELEASED",'
        b'"purpose":"LOAN_APPROVAL","reasons":[],"released":["rec_1"],"request":null,'
        b'"subject":"sbj_1","withheld":0}'
    )


def test_a_consent_change_entry() -> None:
    entry = decision_entry(
        at=datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        caller=SELF,
        method="ApproveConsentRequest",
        outcome="APPROVED",
        subject_id="sbj_1",
        consent_id="cns_1",
        agreement_id="agr-1",
        request_id="crq_1",
    )
    assert entry.id.startswith("aud_")
    assert entry.body() == (
        b'{"agreement":"agr-1","at":"2026-11-27T10:00:00Z","caller":"self",'
        b'"consent":"cns_1","format":"credit-gateway/audit/v1","id":"' + entry.id.encode() + b'",'
        b'"items":[],"method":"ApproveConsentRequest","outcome":"APPROVED","purpose":"",'
        b'"reasons":[],"released":[],"request":"crq_1","subject":"sbj_1","withheld":0}'
    )


@pytest.mark.parametrize("method", ["QueryAuthorized", "QueryOwn", "consents.grant", ""])
def test_a_decision_entry_is_never_an_inquiry(method: str) -> None:
    """ListInquiries leaves out NOT_INQUIRIES only: an entry made here under any other method
    would be shown to the subject as an inquiry into it."""
    with pytest.raises(ValueError, match="not a consent change, right or operator action"):
        decision_entry(
            at=datetime(2026, 11, 27, tzinfo=UTC), caller=OPERATOR, method=method, outcome="DONE"
        )


def test_no_method_is_of_two_kinds_of_decision() -> None:
    kinds = (CONSENT_METHODS, OPERATOR_METHODS, RIGHTS_METHODS, MAINTAIN_METHODS)
    assert sum(len(k) for k in kinds) == len(NOT_INQUIRIES)
    assert frozenset().union(*kinds) == NOT_INQUIRIES
