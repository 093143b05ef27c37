"""The release path: every inquiry and sharing call goes through `release()`.

One write transaction reads the state the policy needs (the subject's records, the agreement and
today's usage, the consent), calls policy.decide, counts the call and the consent use with
atomic conditional UPDATEs (deciding again on locked rows only if a racing call moved a counter),
writes the audit entry and opens the released payloads; then it commits. Only after the commit
does a refusal become an error for the caller, so a refusal is recorded exactly like a release
(fail closed: if the audit write fails, nothing is released). Consent status is read here, in
the transaction, never from a cache: a revocation acts on the very next call on every replica.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from credit_gateway.audit.entries import AuditEntry
from credit_gateway.consent.tokens import ConsentTokenError
from credit_gateway.domain.catalog import Catalog
from credit_gateway.domain.consent import CONDITIONS, Consent
from credit_gateway.domain.decisions import Decision, Reason
from credit_gateway.domain.identifiers import IdentifierError, SubjectKind, parse_subject_code
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.participants import ParticipantKind
from credit_gateway.errors import InvalidArgument, StorageError
from credit_gateway.gateway import Gateway
from credit_gateway.policy import AgreementState, Channel, RecordState, ReleaseRequest, decide
from credit_gateway.storage import agreements as agreement_store
from credit_gateway.storage import audit as audit_store
from credit_gateway.storage import consents as consent_store
from credit_gateway.storage import records as record_store

MAX_ITEMS = 100


@dataclass(frozen=True, slots=True)
class Inquiry:
    channel: Channel
    caller_id: str
    caller_kind_value: str | None  # ParticipantKind value; None for the subject itself
    method: str
    subject_code: str
    purpose: str
    item_codes: tuple[str, ...] = ()
    agreement_id: str | None = None
    consent_token: str | None = None


@dataclass(frozen=True, slots=True)
class Released:
    record_id: str
    item_code: str
    provider_id: str
    payload: bytes
    occurred_at: datetime
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WithheldSummary:
    item_code: str
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class InquiryResult:
    inquiry_id: str
    released: tuple[Released, ...]
    withheld: tuple[WithheldSummary, ...]
    conditions: tuple[str, ...]
    agreement_id: str | None
    consent_id: str | None


def parse_subject(code: str, now: datetime) -> tuple[SubjectKind, str]:
    try:
        kind, parsed = parse_subject_code(code, today=now.date())
    except IdentifierError as exc:
        raise InvalidArgument.field("subject_code", exc.message, reason="BAD_IDENTIFIER") from exc
    return kind, parsed.value


class InquiryService:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._usage_rows: set[tuple[str, date]] = set()  # today's usage rows known to exist

    def release(self, inquiry: Inquiry) -> InquiryResult:
        gw = self.gateway
        now = gw.clock()
        kind, code = parse_subject(inquiry.subject_code, now)
        if len(inquiry.item_codes) > MAX_ITEMS:
            raise InvalidArgument.field("item_codes", f"at most {MAX_ITEMS} items per inquiry")
        catalog = gw.catalog.get()
        consent_id, token_refusal = self._consent_id(inquiry, now)
        attempt = _Attempt(inquiry, kind, code, consent_id, token_refusal, catalog, now)
        if inquiry.agreement_id and inquiry.channel is not Channel.SELF_INQUIRY:
            self._usage_row_exists(inquiry.agreement_id, now)
        try:
            # Decide on state read without locks, count last, just before the commit, so the
            # counters' rows are locked only from their UPDATE to the COMMIT.
            decision, result = self._attempt(attempt, locked=False)
        except (_CountersMoved, StorageError) as exc:
            if isinstance(exc, StorageError) and not exc.transient:
                raise
            # A racing call took a quota or the consent's last use (or the database broke a
            # deadlock): decide again, in a new transaction, on rows locked before they are read.
            decision, result = self._attempt(attempt, locked=True)
        decision.raise_if_refused()  # after the commit: the refusal is on record
        return result

    def _usage_row_exists(self, agreement_id: str, now: datetime) -> None:
        key = (agreement_id, now.date())
        if key not in self._usage_rows:
            with self.gateway.db.transaction() as session:
                agreement_store.ensure_usage_row(session, agreement_id, now.date())
            if len(self._usage_rows) > 10_000:
                self._usage_rows.clear()
            self._usage_rows.add(key)

    def _attempt(self, a: _Attempt, *, locked: bool) -> tuple[Decision, InquiryResult]:
        gw, inquiry, now = self.gateway, a.inquiry, a.now
        inquiry_id = new_id("inq")
        with gw.db.transaction() as session:
            subject, rows = record_store.subject_and_records(
                session,
                gw.envelope,
                gw.subject_lookup(a.code),
                a.code,
                a.kind,
                inquiry.item_codes or None,
                now,
            )
            state = _Read(
                inquiry,
                subject.id,
                a.kind,
                a.consent_id,
                tuple(map(record_store.record_state, rows)),
            )
            decision, agreement, consent = state.decide(
                session, a.catalog, now, a.token_refusal, locked=locked
            )
            released_ids = {r.record_id: r.labels for r in decision.releases}
            released = tuple(
                _released(record_store.open_record(gw.envelope, row), released_ids[row.id])
                for row in rows
                if row.id in released_ids
            )
            audit_store.append(
                session,
                AuditEntry(
                    id=inquiry_id,
                    at=now,
                    caller=inquiry.caller_id,
                    method=inquiry.method,
                    subject_id=subject.id,
                    purpose=inquiry.purpose,
                    items=inquiry.item_codes,
                    outcome=decision.outcome.value,
                    reasons=decision.reasons,
                    agreement_id=inquiry.agreement_id,
                    consent_id=a.consent_id,
                    released_records=tuple(released_ids),
                    withheld_records=len(decision.withheld_records),
                ),
            )
            if not _counted(session, inquiry, decision, agreement, consent, now):
                if locked:  # cannot happen: the rows were read under their locks
                    raise StorageError("usage counters moved while locked")
                raise _CountersMoved  # leaving the block rolls the whole attempt back
        return decision, InquiryResult(
            inquiry_id=inquiry_id,
            released=released,
            withheld=_summarise(decision, inquiry.channel),
            conditions=CONDITIONS if inquiry.channel is not Channel.SELF_INQUIRY else (),
            agreement_id=inquiry.agreement_id,
            consent_id=a.consent_id,
        )

    def _consent_id(self, inquiry: Inquiry, now: datetime) -> tuple[str | None, Reason | None]:
        """The consent a token points at, or the reason the token is refused (to be recorded)."""
        if inquiry.channel is not Channel.AUTHORIZED_INQUIRY:
            return None, None
        if not inquiry.consent_token:
            return None, Reason.CONSENT_REQUIRED
        try:
            claims = self.gateway.consent_verifier.verify(inquiry.consent_token, now)
        except ConsentTokenError as exc:
            reason = Reason.__members__.get(exc.reason, Reason.CONSENT_TOKEN_INVALID)
            return exc.consent_id, reason
        if claims.grantee != inquiry.caller_id:
            return claims.consent_id, Reason.CONSENT_OTHER_GRANTEE
        return claims.consent_id, None


class _CountersMoved(Exception):
    """Raised inside an attempt's transaction to roll it back and decide again under locks."""


@dataclass(frozen=True, slots=True)
class _Attempt:
    inquiry: Inquiry
    kind: SubjectKind
    code: str
    consent_id: str | None
    token_refusal: Reason | None
    catalog: Catalog
    now: datetime


@dataclass(frozen=True, slots=True)
class _Read:
    """What one inquiry's decision is made from, besides the counters read per attempt."""

    inquiry: Inquiry
    subject_id: str
    subject_kind: SubjectKind
    consent_id: str | None
    records: tuple[RecordState, ...]

    def decide(
        self,
        session: Session,
        catalog: Catalog,
        now: datetime,
        token_refusal: Reason | None,
        *,
        locked: bool,
    ) -> tuple[Decision, AgreementState | None, Consent | None]:
        inquiry = self.inquiry
        agreement = None
        if inquiry.agreement_id and inquiry.channel is not Channel.SELF_INQUIRY:
            agreement = agreement_store.agreement_state(
                session, inquiry.agreement_id, now.date(), lock=locked
            )
        consent = (
            consent_store.get_consent(session, self.consent_id, lock=locked)
            if self.consent_id
            else None
        )
        if token_refusal is not None:
            return Decision(token_refusal), agreement, consent
        self_inquiry = inquiry.channel is Channel.SELF_INQUIRY
        request = ReleaseRequest(
            channel=inquiry.channel,
            caller_id=self.subject_id if self_inquiry else inquiry.caller_id,
            caller_kind=ParticipantKind(inquiry.caller_kind_value)
            if inquiry.caller_kind_value
            else None,
            subject_id=self.subject_id,
            subject_kind=self.subject_kind,
            purpose=inquiry.purpose,
            requested_items=inquiry.item_codes,
            agreement=agreement,
            consent=consent,
            records=self.records,
        )
        return decide(request, catalog, now), agreement, consent


def _counted(
    session: Session,
    inquiry: Inquiry,
    decision: Decision,
    agreement: AgreementState | None,
    consent: Consent | None,
    now: datetime,
) -> bool:
    """Counts the call against the agreement's quotas and the use against the consent, each an
    atomic conditional UPDATE; False if either had moved (the caller then rolls back)."""
    if decision.refusal is not None:
        return True
    if agreement is not None and not agreement_store.count_usage(
        session, agreement, now.date(), len(decision.releases)
    ):
        return False
    if decision.uses_consent and consent is not None:
        return consent_store.count_use(session, consent, inquiry.caller_id, now)
    return True


def _released(record: record_store.StoredRecord, labels: tuple[str, ...]) -> Released:
    state = record.state
    return Released(
        state.id, state.item_code, record.provider_id, record.payload, state.occurred_at, labels
    )


def _summarise(decision: Decision, channel: Channel) -> tuple[WithheldSummary, ...]:
    """What the answer says was withheld. Item-level reasons say nothing about whether records
    exist. Record-level ones would (a punishment past its disclosure period, a record restored
    out of service or suspended under objection): only the subject sees those, and the caller
    sees only that its record quota ran out. The audit entry keeps every reason."""
    items = [WithheldSummary(w.item_code, w.reason.value, 0) for w in decision.withheld_items]
    shown = [
        w
        for w in decision.withheld_records
        if channel is Channel.SELF_INQUIRY or w.reason is Reason.QUOTA_RECORDS_EXHAUSTED
    ]
    counts = Counter((w.item_code, w.reason.value) for w in shown)
    return (
        *items,
        *(WithheldSummary(item, reason, n) for (item, reason), n in sorted(counts.items())),
    )
