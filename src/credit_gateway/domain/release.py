"""The release flow, without I/O: what a release reads, how it decides, what it writes.

Every inquiry and sharing call is one `ReleaseFlow`. Given the inquiry, its parsed subject and
what its consent token said, the flow names the reads of an attempt (`Reads`); given what was
read (`ReadState`) it calls policy.decide, the only release decision, and returns the writes
(`Writes`): the audit entry, the subject if it is new, one call counted against the agreement's
quotas and one use against the consent, each a *conditional* write. A `ReleaseStore` performs
one attempt's reads and writes in one transaction and commits only if every conditional write
applied. If one did not (a racing call took a quota or the consent's last use meanwhile, or the
database broke a deadlock), the whole attempt was rolled back, and the flow asks for one more
attempt with the counters' rows read under locks; that one cannot be overtaken. Only after a
commit does a refusal become an error for the caller, so a refusal is on record exactly like a
release (fail closed: a payload that does not open, or a failed write, releases nothing).

Nothing here touches a database, the network or a clock: `run` drives a flow against any store
(storage/release_store.py is the SQL one; the unit tests use an in-memory one). The caller's
standing (its participant row and its token's revocation) can be read in the same transaction
(`Inquiry.standing`) and is then checked before anything else is decided.

A call with an idempotency key (domain/idempotency.py) also reads the answer recorded under
it: if there is one, fresh, the attempt answers from it and writes only its REPLAYED audit entry;
if not, a release (not a refusal) writes the answer, sealed, as one more conditional write, so a
racing call with the key that lost is redone under locks and answers from the winner's record.
The subject on record is answered only as the kind it was stored as (check_subject_kind).
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from credit_gateway.domain.audit import AuditEntry
from credit_gateway.domain.canonical import canonical_bytes, parse_json_object
from credit_gateway.domain.catalog import Catalog
from credit_gateway.domain.consent import CONDITIONS, Consent
from credit_gateway.domain.decisions import Decision, Reason
from credit_gateway.domain.idempotency import Keyed, NewRecord, Recorded, fingerprint
from credit_gateway.domain.identifiers import (
    IdentifierError,
    SubjectKind,
    birth_date,
    parse_subject_code,
)
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.participants import (
    Participant,
    ParticipantKind,
    Standing,
    check_standing,
)
from credit_gateway.domain.policy import (
    AgreementState,
    Channel,
    RecordState,
    ReleaseRequest,
    decide,
)
from credit_gateway.domain.records import record_aad, subject_aad
from credit_gateway.domain.timestamps import civil_date
from credit_gateway.errors import FailedPrecondition, InvalidArgument, StorageError

MAX_ITEMS = 100
REPLAYED = "REPLAYED"  # the outcome of an audit entry that answered a retry (domain/idempotency.py)


# --- the call and its answer -------------------------------------------------------------------


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
    # The kind of subject the caller says it means (None: not said; an ambiguous code is then
    # refused, see identifiers.parse_subject_code).
    subject_kind: SubjectKind | None = None
    # The call's idempotency-key (domain/idempotency.py), on a method that honours one.
    idempotency_key: str | None = None
    # The caller's standing, read and checked in the release transaction (one read, not two);
    # None: the caller has checked it already. The caller's kind may then come from it.
    standing: Standing | None = None


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

    def to_bytes(self) -> bytes:
        """The answer as recorded for a retry (sealed before it is stored)."""
        return canonical_bytes(
            {
                "format": _ANSWER_FORMAT,
                "inquiry_id": self.inquiry_id,
                "released": [
                    {
                        "record_id": r.record_id,
                        "item_code": r.item_code,
                        "provider_id": r.provider_id,
                        "payload": base64.b64encode(r.payload).decode(),
                        "occurred_at": r.occurred_at.isoformat(),
                        "labels": list(r.labels),
                    }
                    for r in self.released
                ],
                "withheld": [[w.item_code, w.reason, w.count] for w in self.withheld],
                "conditions": list(self.conditions),
                "agreement_id": self.agreement_id,
                "consent_id": self.consent_id,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> InquiryResult:
        doc: dict[str, Any] = parse_json_object(data)
        if doc.get("format") != _ANSWER_FORMAT:
            raise ValueError("not a recorded answer")
        return cls(
            inquiry_id=doc["inquiry_id"],
            released=tuple(
                Released(
                    r["record_id"],
                    r["item_code"],
                    r["provider_id"],
                    base64.b64decode(r["payload"], validate=True),
                    datetime.fromisoformat(r["occurred_at"]),
                    tuple(r["labels"]),
                )
                for r in doc["released"]
            ),
            withheld=tuple(WithheldSummary(i, reason, n) for i, reason, n in doc["withheld"]),
            conditions=tuple(doc["conditions"]),
            agreement_id=doc["agreement_id"],
            consent_id=doc["consent_id"],
        )


_ANSWER_FORMAT = "credit-gateway/idempotent-answer/v1"


# --- what the flow is given before any read ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """The inquiry's subject code, parsed, and its lookup key (the keyed hash it is stored by)."""

    kind: SubjectKind
    code: str
    lookup: str

    @property
    def born(self) -> date | None:
        return birth_date(self.kind, self.code)


def check_items(item_codes: tuple[str, ...]) -> None:
    if len(item_codes) > MAX_ITEMS:
        raise InvalidArgument.field("item_codes", f"at most {MAX_ITEMS} items per inquiry")


def parse_subject(
    code: str, now: datetime, kind: SubjectKind | None = None
) -> tuple[SubjectKind, str]:
    """The code read as the kind of subject the caller means (`kind`; None: not said). The
    identifier's own reason is kept: BAD_IDENTIFIER, SUBJECT_KIND_REQUIRED (valid as a resident
    id and as a USCC, and no kind said) or SUBJECT_KIND_MISMATCH (valid, as another kind)."""
    try:
        parsed_kind, parsed = parse_subject_code(code, today=civil_date(now), kind=kind)
    except IdentifierError as exc:
        raise InvalidArgument.field("subject_code", exc.message, reason=exc.reason) from exc
    return parsed_kind, parsed.value


def check_subject_kind(stored: SubjectKind | None, asked: SubjectKind) -> None:
    """A subject on record (`stored`; None: not yet) is only ever answered as the kind it was
    stored as: a code that is both a resident id and a USCC could name two subjects, and the one
    on record is refused under the other's kind, never mixed with it. The reason is the one a
    submission about it gets (SUBJECT_KIND_MISMATCH, as for a code not valid as that kind): at
    this center the code is not a subject of the kind asked for."""
    if stored is not None and stored is not asked:
        raise InvalidArgument.field(
            "subject_kind",
            f"this subject is held as {stored.value}, not {asked.value}; a subject is one kind",
            reason="SUBJECT_KIND_MISMATCH",
        )


@dataclass(frozen=True, slots=True)
class ConsentToken:
    """What verifying the inquiry's consent token said: the consent it names (when its signature
    verified) and its grantee, or `refused`, the verifier's reason."""

    consent_id: str | None
    grantee: str | None = None
    refused: str | None = None


class Sealer(Protocol):
    """The envelope (crypto/envelope.py): pure computation, bound to a place by `aad`."""

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]: ...

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes: ...


# --- what an attempt reads, and what it read ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reads:
    """One attempt's reads, made in its transaction. `locked`: the usage row and the consent are
    read under row locks held to the end of the transaction (the retry; SQLite's write
    transaction holds the database anyway)."""

    subject_lookup: str
    item_codes: tuple[str, ...] | None  # the subject's records of these items; None: all
    agreement_id: str | None  # with today's usage row (`day`)
    day: date
    consent_id: str | None
    locked: bool = False
    standing: Standing | None = None  # the caller's participant row and token revocation
    keyed: Keyed | None = None  # the answer recorded under the call's idempotency key


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as read: its payload still sealed unless `payload_key_id` is None (open)."""

    id: str
    provider_id: str
    item_code: str
    occurred_at: datetime
    payload_key_id: str | None
    payload: bytes
    in_service: bool
    objection_filed_at: datetime | None = None
    disclosure_until: datetime | None = None

    def policy_state(self) -> RecordState:
        """What the policy judges of it."""
        return RecordState(
            self.id,
            self.item_code,
            self.occurred_at,
            in_service=self.in_service,
            objection_filed_at=self.objection_filed_at,
            disclosure_until=self.disclosure_until,
        )


@dataclass(frozen=True, slots=True)
class ReadState:
    subject_id: str | None  # None: no inquiry or submission has named this subject yet
    subject_kind: SubjectKind | None = None  # the kind it is on record as (with subject_id)
    records: tuple[StoredRecord, ...] = ()
    agreement: AgreementState | None = None  # None: not asked for, or no such agreement
    consent: Consent | None = None  # None: not asked for, or no such consent
    caller: Participant | None = None  # read for `Reads.standing`; None: not asked, or unknown
    token_revoked: bool = False
    recorded: Recorded | None = None  # read for `Reads.keyed`; None: not asked, or none


# --- what an attempt writes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSubject:
    """Written unless a concurrent call made the subject first (then the attempt is redone)."""

    id: str
    lookup: str
    kind: SubjectKind
    code_key_id: str
    code_sealed: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UsageCount:
    """One call and `records` records on the agreement's `day`, only while the row's calls are
    below `calls_limit` and its records plus these at most `records_limit`."""

    agreement_id: str
    day: date
    records: int
    calls_limit: int
    records_limit: int


@dataclass(frozen=True, slots=True)
class ConsentUse:
    """One more use, only while the consent is active, `at` is in its window and it has uses
    left. `last`: this use spends the last one (uses + 1 == max_uses, as read), which also moves
    the consent to EXHAUSTED and writes that event (grantee, actor); otherwise uses + 1 stays
    below max_uses. Either condition is checked on the row as it is when written."""

    consent_id: str
    grantee_id: str
    actor: str
    at: datetime
    last: bool


@dataclass(frozen=True, slots=True)
class Writes:
    audit: AuditEntry
    subject: NewSubject | None = None
    usage: UsageCount | None = None
    consent_use: ConsentUse | None = None
    # The answer recorded for a retry: a conditional write (the key not recorded meanwhile).
    idempotency: NewRecord | None = None


class ReleaseStore(Protocol):
    def ensure_usage_row(self, agreement_id: str, day: date) -> None:
        """Today's usage row of the agreement exists (if the agreement does), made in a short
        transaction of its own: the release then updates an existing row (on InnoDB an UPDATE
        that finds no row takes a gap lock, which concurrent inserts deadlock on)."""
        ...

    def release(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
        """One transaction: make `reads`, pass what they read to `decide`, make the writes it
        returns; commit and answer True if every conditional write applied, else roll back and
        answer False. An exception from `decide` rolls back. Driver errors leave as
        StorageError (`transient` for a deadlock or serialization failure)."""
        ...


# --- the flow ----------------------------------------------------------------------------------


class ReleaseFlow:
    """One release. `reads()` names the current attempt's reads, `decide(state)` returns its
    writes, `applied(ok)`/`failed(error)` take the store's answer; when `done`, `result()`
    answers (or raises the refusal, which by then is committed)."""

    def __init__(
        self,
        inquiry: Inquiry,
        subject: Subject,
        token: ConsentToken | None,
        catalog: Catalog,
        now: datetime,
        sealer: Sealer,
    ) -> None:
        check_items(inquiry.item_codes)
        self.inquiry, self.subject, self.catalog, self.now = inquiry, subject, catalog, now
        self._sealer = sealer
        self.consent_id, self.token_refusal = _consent_of(inquiry, token)
        self._self = inquiry.channel is Channel.SELF_INQUIRY
        self._caller_kind = (
            ParticipantKind(inquiry.caller_kind_value) if inquiry.caller_kind_value else None
        )
        # A refused token decides the inquiry by itself: nothing else to read, nothing counted.
        refused = self.token_refusal is not None
        self._agreement_id = None if self._self or refused else inquiry.agreement_id
        self._items = tuple(sorted(set(inquiry.item_codes))) if inquiry.item_codes else None
        self._locked = False
        # The decision (None: a retry answered from its record) and the answer.
        self._outcome: tuple[Decision | None, InquiryResult] | None = None
        self._pending: tuple[Decision | None, InquiryResult] | None = None
        self._keyed = self._fingerprint = None
        if inquiry.idempotency_key is not None:
            self._keyed = Keyed(inquiry.caller_id, inquiry.method, inquiry.idempotency_key)
            self._fingerprint = fingerprint(
                inquiry.method,
                subject.lookup,
                subject.kind,
                inquiry.item_codes,
                inquiry.purpose,
                inquiry.agreement_id,
                inquiry.consent_token,
            )

    @property
    def usage_row(self) -> tuple[str, date] | None:
        """The usage row the attempts will count on, to exist before the first one."""
        return None if self._agreement_id is None else (self._agreement_id, self.now.date())

    @property
    def done(self) -> bool:
        return self._outcome is not None

    def reads(self) -> Reads:
        return Reads(
            subject_lookup=self.subject.lookup,
            item_codes=self._items,
            agreement_id=self._agreement_id,
            day=self.now.date(),
            consent_id=None if self.token_refusal else self.consent_id,
            locked=self._locked,
            standing=self.inquiry.standing,
            keyed=self._keyed,
        )

    def decide(self, state: ReadState) -> Writes:
        inquiry, now = self.inquiry, self.now
        if inquiry.standing is not None:
            # Before anything is decided: a caller without standing is an authentication
            # failure (raised, so the store rolls back), not a decision about the subject.
            caller = check_standing(state.caller, state.token_revoked, now)
            if not self._self and self._caller_kind is None:
                self._caller_kind = caller.kind
        recorded = state.recorded
        if recorded is not None and recorded.honoured(now):
            return self._replay(state, recorded)  # nothing is decided again, nor counted
        # Raised, so nothing is written: the code names another subject than the one on record.
        check_subject_kind(state.subject_kind, self.subject.kind)
        new_subject = None
        subject_id = state.subject_id
        if subject_id is None:  # made now: the inquiry into it is recorded against it
            new_subject = self._new_subject()
            subject_id = new_subject.id
        agreement, consent = state.agreement, state.consent
        decision = (
            Decision(self.token_refusal)
            if self.token_refusal is not None
            else decide(self._request(subject_id, state), self.catalog, now)
        )
        # Opened inside the transaction: a payload that does not open releases nothing.
        records = {r.id: r for r in state.records}
        released = tuple(self._open(records[r.record_id], r.labels) for r in decision.releases)
        inquiry_id = new_id("inq")
        audit = AuditEntry(
            id=inquiry_id,
            at=now,
            caller=inquiry.caller_id,
            method=inquiry.method,
            subject_id=subject_id,
            purpose=inquiry.purpose,
            items=inquiry.item_codes,
            outcome=decision.outcome.value,
            reasons=decision.reasons,
            agreement_id=inquiry.agreement_id,
            consent_id=self.consent_id,
            released_records=tuple(r.record_id for r in decision.releases),
            withheld_records=len(decision.withheld_records),
        )
        usage = use = None
        if decision.refusal is None:
            if agreement is not None:
                quotas = agreement.agreement.quotas
                usage = UsageCount(
                    agreement.agreement.id,
                    now.date(),
                    len(decision.releases),
                    quotas.calls_per_day,
                    quotas.records_per_day,
                )
            if decision.uses_consent and consent is not None:
                last = consent.uses + 1 >= consent.terms.max_uses
                use = ConsentUse(consent.id, consent.terms.grantee, inquiry.caller_id, now, last)
        result = InquiryResult(
            inquiry_id=inquiry_id,
            released=released,
            withheld=summarise(decision, inquiry.channel),
            conditions=() if self._self else CONDITIONS,
            agreement_id=inquiry.agreement_id,
            consent_id=self.consent_id,
        )
        self._pending = (decision, result)
        record = None
        if self._keyed is not None and decision.refusal is None:  # a refusal is decided afresh
            record = self._record(result, stale=recorded is not None)
        return Writes(audit, new_subject, usage, use, record)

    def applied(self, ok: bool) -> None:
        """The store's answer: committed (`ok`), or rolled back because a row had moved."""
        if ok:
            assert self._pending is not None, "decide() was not called"
            self._outcome, self._pending = self._pending, None
            return
        if self._locked:  # cannot happen: the rows were read under their locks
            raise StorageError("usage counters moved while locked")
        self._retry_locked()

    def failed(self, error: StorageError) -> None:
        """The attempt failed in the store (and was rolled back). A deadlock or serialization
        failure is retried once, under locks; anything else is the caller's answer."""
        if self._locked or not error.transient:
            raise error
        self._retry_locked()

    def result(self) -> InquiryResult:
        assert self._outcome is not None, "the flow is not done"
        decision, result = self._outcome
        if decision is not None:
            decision.raise_if_refused()  # after the commit: the refusal is on record
        return result

    # --- internals ---

    def _record(self, result: InquiryResult, *, stale: bool) -> NewRecord:
        """The answer, sealed to the caller, method and key, to be written with the release."""
        assert self._keyed is not None
        assert self._fingerprint is not None
        key_id, sealed = self._sealer.seal(result.to_bytes(), self._keyed.aad())
        return NewRecord(
            self._keyed,
            self._fingerprint,
            result.inquiry_id,
            key_id,
            sealed,
            self.now,
            replaces_stale=stale,
        )

    def _replay(self, state: ReadState, recorded: Recorded) -> Writes:
        """A retry: the recorded answer, if the key was recorded for this very request. Its audit
        entry says so (outcome REPLAYED, its reason the inquiry replayed) and counts nothing."""
        assert self._keyed is not None
        if recorded.fingerprint != self._fingerprint:
            raise FailedPrecondition(  # raised: nothing is written
                "this idempotency-key was used for another request",
                reason="IDEMPOTENCY_KEY_REUSED",
            )
        opened = self._sealer.open(recorded.answer_key_id, recorded.answer, self._keyed.aad())
        result = InquiryResult.from_bytes(opened)
        inquiry = self.inquiry
        audit = AuditEntry(
            id=new_id("inq"),
            at=self.now,
            caller=inquiry.caller_id,
            method=inquiry.method,
            subject_id=state.subject_id,
            purpose=inquiry.purpose,
            items=inquiry.item_codes,
            outcome=REPLAYED,
            reasons=(recorded.inquiry_id,),
            agreement_id=inquiry.agreement_id,
            consent_id=result.consent_id,
            released_records=tuple(r.record_id for r in result.released),
        )
        self._pending = (None, result)
        return Writes(audit)

    def _retry_locked(self) -> None:
        self._locked, self._pending = True, None

    def _request(self, subject_id: str, state: ReadState) -> ReleaseRequest:
        inquiry = self.inquiry
        return ReleaseRequest(
            channel=inquiry.channel,
            caller_id=subject_id if self._self else inquiry.caller_id,
            caller_kind=self._caller_kind,
            subject_id=subject_id,
            subject_kind=self.subject.kind,
            purpose=inquiry.purpose,
            requested_items=inquiry.item_codes,
            agreement=state.agreement,
            consent=state.consent,
            records=tuple(r.policy_state() for r in state.records),
            subject_born=self.subject.born,
        )

    def _new_subject(self) -> NewSubject:
        s = self.subject
        key_id, sealed = self._sealer.seal(s.code.encode(), subject_aad(s.lookup))
        return NewSubject(new_id("sbj"), s.lookup, s.kind, key_id, sealed, self.now)

    def _open(self, record: StoredRecord, labels: tuple[str, ...]) -> Released:
        return open_record(self._sealer, record, labels)


def open_record(sealer: Sealer, record: StoredRecord, labels: tuple[str, ...]) -> Released:
    """A released record with its payload opened (sealed payloads are bound to their record's
    id); raises if it does not open, so a payload that does not open releases nothing. The
    release flow's and the change feed's one way to open what they release."""
    payload = record.payload
    if record.payload_key_id is not None:
        payload = sealer.open(record.payload_key_id, payload, record_aad(record.id))
    return Released(
        record.id, record.item_code, record.provider_id, payload, record.occurred_at, labels
    )


def run(flow: ReleaseFlow, store: ReleaseStore) -> InquiryResult:
    """Drives a flow against a store: the usage row first, then attempts until one commits."""
    if flow.usage_row is not None:
        store.ensure_usage_row(*flow.usage_row)
    while not flow.done:
        try:
            ok = store.release(flow.reads(), flow.decide)
        except StorageError as exc:
            flow.failed(exc)
        else:
            flow.applied(ok)
    return flow.result()


def _consent_of(inquiry: Inquiry, token: ConsentToken | None) -> tuple[str | None, Reason | None]:
    """The consent the token points at, or the reason the token is refused (to be recorded)."""
    if inquiry.channel is not Channel.AUTHORIZED_INQUIRY:
        return None, None
    if token is None:
        return None, Reason.CONSENT_REQUIRED
    if token.refused is not None:
        return token.consent_id, Reason.__members__.get(token.refused, Reason.CONSENT_TOKEN_INVALID)
    if token.grantee != inquiry.caller_id:
        return token.consent_id, Reason.CONSENT_OTHER_GRANTEE
    return token.consent_id, None


def summarise(decision: Decision, channel: Channel) -> tuple[WithheldSummary, ...]:
    """What the answer says was withheld. Item-level reasons say nothing about whether records
    exist. Record-level ones would (a punishment past its disclosure period, a record restored
    out of service or suspended under objection): only the subject sees those, and the caller
    sees only that its record quota ran out. The audit entry keeps every reason."""
    if not decision.withheld_items and not decision.withheld_records:
        return ()
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
