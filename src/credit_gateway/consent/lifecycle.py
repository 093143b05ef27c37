"""The consent lifecycle (Art 19-20) without I/O: who may do what, and what each step writes.

Each change is a flow, as a release is (domain/release.py): `reads()` names what it reads,
`decide(state)` applies the rules below to what was read and returns the writes (or raises the
refusal), and `result()` answers once the store committed them. A `ConsentStore` makes one
change's reads and writes in one transaction, the consent or request it changes read under a
row lock, so two changes of one consent never interleave; nothing here is cached, so the next
release transaction on any replica sees a revocation as soon as the call that made it returns.
A question (get, list, inquiries, the grantee's look-ups) is one `ConsentStore.read` and a pure
function of what it read.

The rules, each refusal with its reason:
  * a subject acts on its own consents and requests only; another's is answered as absent
    (CONSENT_NOT_FOUND, CONSENT_REQUEST_NOT_FOUND);
  * a consent moves as domain/consent.py `transition` allows, from the status it has in
    effect: one past its validity or its uses is expired or exhausted, and so final, whatever
    its row says (CONSENT_<STATUS> when the move is not allowed);
  * a request is decided once (CONSENT_REQUEST_DECIDED);
  * the grantee is a credit agency or industry association in good standing (active, licence
    valid) with an agreement in force for authorized inquiry (GRANTEE_NOT_ELIGIBLE, Art 20
    para 2); a grantee asks for consent for itself only;
  * the terms meet their purpose's limits (ConsentTerms.validate: CONSENT_TERMS_INVALID);
  * a subject that registered a key must sign the artefact with it (SUBJECT_SIGNATURE_REQUIRED,
    SUBJECT_SIGNATURE_INVALID), one that did not must send no signature, which stored
    unverified would later pass for its own (SUBJECT_KEY_NOT_REGISTERED); the evidence kept
    says which of the two proved the subject's will;
  * a natural person under 14 on the gateway's clock (domain/minors.py) grants, or approves,
    only with its guardian's authorisation (PIPL Art 31), on top of its own will proved as
    above (GUARDIAN_REQUIRED); the guardian is an adult (GUARDIAN_NOT_ADULT: the minor naming
    itself is one) on record as a natural person with a registered key (GUARDIAN_NOT_REGISTERED)
    that signed the same artefact (GUARDIAN_SIGNATURE_INVALID). The consent keeps the guardian
    and its signature, and its entry says GUARDIAN_AUTHORISED. Anyone else naming a guardian is
    refused GUARDIAN_NOT_NEEDED rather than storing an authorisation nobody asked for.

Every change is a decision on record (issue #13): its writes carry the audit entry
(domain/audit.decision_entry) of what came of it, committed with it. A refusal decided on what
was read rolls its change back, so `run` records its entry (outcome REFUSED, the reason) in a
second small transaction that writes only that, before the refusal reaches the caller: the
release path's refusals are on record alike, with nothing else written. A call refused before
anything is read (malformed terms, a grantee asking for another) is a malformed request, as
an inquiry naming an unknown item is: not a decision about anyone, and not recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar, Generic, Protocol, TypeVar

from credit_gateway.domain.agreements import Operation
from credit_gateway.domain.audit import REFUSED, SELF, AuditEntry, decision_entry
from credit_gateway.domain.catalog import Catalog, DisclosureLevel
from credit_gateway.domain.consent import (
    Consent,
    ConsentRequest,
    ConsentStatus,
    ConsentTerms,
    RequestStatus,
    artefact_bytes,
    transition,
)
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.minors import is_adult, is_minor
from credit_gateway.domain.participants import Participant, ParticipantKind
from credit_gateway.domain.policy import AgreementState, not_in_force
from credit_gateway.domain.release import Subject, check_subject_kind
from credit_gateway.errors import (
    CallerError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StorageError,
)

GRANTEE_KINDS = frozenset({ParticipantKind.CREDIT_AGENCY, ParticipantKind.INDUSTRY_ASSOCIATION})
EVIDENCE_SIGNATURE = "subject_signature"
EVIDENCE_REAL_NAME = "real_name_assertion"
GUARDIAN_AUTHORISED = "GUARDIAN_AUTHORISED"  # the grant's entry says a guardian authorised it
MAX_INQUIRIES = 1000

T = TypeVar("T")
_Made = TypeVar("_Made", Consent, ConsentRequest)
T_co = TypeVar("T_co", covariant=True)


# --- what an operation reads, and what it read -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reads:
    """One operation's reads, made in its transaction; each left at its default is not made."""

    subject_lookup: str | None = None  # the subject by its lookup key (the keyed hash)
    subject_id: str | None = None  # a subject's code, opened
    consent_id: str | None = None  # locked in a change
    request_id: str | None = None  # locked in a change
    grantee_id: str | None = None  # the participant and every agreement it is party to...
    request_grantee: bool = False  # ...or those of the grantee the request names
    consents: tuple[ConsentStatus, ...] | None = None  # the subject's, in these (all if empty)
    requests: tuple[RequestStatus, ...] | None = None  # the subject's, in these (all if empty)
    inquiries: int = 0  # this many of the subject's audit entries (under `consent_id` if named)
    guardian_lookup: str | None = None  # the guardian a minor's grant names, by its lookup key


@dataclass(frozen=True, slots=True)
class StoredSubject:
    id: str
    public_jwk: str | None  # the key the subject registered: its consents must be signed with it
    kind: SubjectKind | None = None  # as it is on record (None: not read)


@dataclass(frozen=True, slots=True)
class ReadState:
    """What was read: None or empty for what was not asked for or was not found. Lists newest
    first."""

    subject: StoredSubject | None = None
    subject_code: str | None = None
    subject_kind: SubjectKind | None = None  # read with `subject_code`
    consent: Consent | None = None
    request: ConsentRequest | None = None
    grantee: Participant | None = None
    agreements: tuple[AgreementState, ...] = ()
    consents: tuple[Consent, ...] = ()
    requests: tuple[ConsentRequest, ...] = ()
    inquiries: tuple[dict[str, object], ...] = ()
    guardian: StoredSubject | None = None


# --- what a change writes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSubject:
    """A subject named for the first time, added with its code sealed at rest; unless a
    concurrent call added it first, and then the change is made again on that one."""

    id: str
    subject: Subject
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewConsent:
    """The consent, with its event, and the artefact byte for byte as the subject gave (and
    maybe signed) it, sealed at rest; a minor's, with the guardian who signed it too."""

    consent: Consent
    artefact: bytes
    signature: bytes | None
    guardian_id: str | None = None
    guardian_signature: bytes | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The consent's status set, with the event from the status it had."""

    consent_id: str
    status: ConsentStatus
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RequestDecision:
    """The request decided, with its event; approved, with the consent that came of it."""

    request_id: str
    status: RequestStatus
    actor: str
    at: datetime
    consent_id: str | None = None


@dataclass(frozen=True, slots=True)
class Writes:
    """In this order: the subject, the consent, the request, its decision, the status change,
    the audit entry of the change (set by the flow, last, once it decided)."""

    subject: NewSubject | None = None
    consent: NewConsent | None = None
    request: ConsentRequest | None = None  # a new one, pending, with its event
    decision: RequestDecision | None = None
    change: StatusChange | None = None
    audit: AuditEntry | None = None


class ConsentStore(Protocol):
    def read(self, reads: Reads) -> ReadState:
        """One read-only transaction."""
        ...

    def change(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
        """One write transaction: make `reads` (the consent and the request under row locks),
        pass what they read to `decide`, make the writes it returns and commit; or roll back
        and answer False if the new subject was added meanwhile by another transaction. An
        exception from `decide` rolls back. Driver errors leave as StorageError."""
        ...

    def record(self, entry: AuditEntry) -> None:
        """One write transaction that writes only `entry`: a refused change's, once the change
        rolled back."""
        ...


@dataclass(frozen=True, slots=True)
class Signature:
    """What the subject sent with its consent: a signature over the artefact by the key `key_id`
    of its registered JWK, or nothing (empty)."""

    value: bytes = b""
    key_id: str = ""


@dataclass(frozen=True, slots=True)
class Guardian:
    """A minor's guardian as the call named it (its code read as a natural person's) and its
    signature over the artefact the minor consents to."""

    subject: Subject
    signature: Signature


class SignatureCheck(Protocol):
    def __call__(self, public_jwk: str, key_id: str, data: bytes, signature: bytes) -> bool:
        """Whether `signature` verifies over `data` with the key `key_id` of the signer's
        registered JWK (the subject's, or a minor's guardian's; its only key when `key_id` is
        empty)."""
        ...


# --- the rules ---------------------------------------------------------------------------------


def check_grantee(
    grantee: Participant | None, agreements: Iterable[AgreementState], now: datetime
) -> str:
    """Consent may be given to `grantee` at `now` (Art 20 para 2), or InvalidArgument says why
    not: it must be in good standing and hold an agreement in force for authorized inquiry.
    Answers the (first such) agreement's id, which the audit entry names."""
    if grantee is None or grantee.kind not in GRANTEE_KINDS or not _may_act(grantee, now):
        raise InvalidArgument.field(
            "terms.grantee",
            "not a licensed credit service establishment or industry association in good standing",
            reason="GRANTEE_NOT_ELIGIBLE",
        )
    for state in agreements:
        if _for_authorized_inquiry(state, grantee.id, now):
            return state.agreement.id
    raise InvalidArgument.field(
        "terms.grantee",
        "has no agreement in force for authorized inquiry",
        reason="GRANTEE_NOT_ELIGIBLE",
    )


def _may_act(participant: Participant, now: datetime) -> bool:
    try:
        participant.ensure_may_act(now)  # active, and a credit agency's licence valid
    except PermissionDenied:
        return False
    return True


def _for_authorized_inquiry(state: AgreementState, grantee_id: str, now: datetime) -> bool:
    return (
        state.agreement.counterparty == grantee_id
        and not_in_force(state, Operation.INQUIRY, now) is None
        and DisclosureLevel.AUTHORIZED in state.agreement.levels
    )


def evidence(
    public_jwk: str | None, artefact: bytes, signature: Signature, check: SignatureCheck
) -> str:
    """What proves the subject's will: its signature where it registered a key (then it must
    sign), else the identity provider's real-name assertion (then it must not)."""
    if public_jwk is None:
        if signature.value:
            raise InvalidArgument.field(
                "subject_signature",
                "this subject has no registered key; send no signature",
                reason="SUBJECT_KEY_NOT_REGISTERED",
            )
        return EVIDENCE_REAL_NAME
    if not signature.value:
        raise PermissionDenied(
            "this subject must sign its consent", reason="SUBJECT_SIGNATURE_REQUIRED"
        )
    if not check(public_jwk, signature.key_id, artefact, signature.value):
        raise PermissionDenied(
            "the subject's signature does not verify over the consent artefact with a key it "
            "registered",
            reason="SUBJECT_SIGNATURE_INVALID",
        )
    return EVIDENCE_SIGNATURE


def guardian_of(
    subject: Subject,
    guardian: Guardian | None,
    found: StoredSubject | None,
    artefact: bytes,
    now: datetime,
    check: SignatureCheck,
) -> str | None:
    """The id of the guardian who authorised `subject`'s consent to `artefact` at `now`
    (`found`: the guardian as read), None when the subject needs none; or the refusal."""
    if not is_minor(subject.born, now):
        if guardian is not None:
            raise InvalidArgument.field(
                "guardian",
                "the subject is not a natural person under 14: it consents alone",
                reason="GUARDIAN_NOT_NEEDED",
            )
        return None
    if guardian is None:
        raise FailedPrecondition(
            "a natural person under 14 consents only with its guardian's authorisation",
            reason="GUARDIAN_REQUIRED",
        )
    born = guardian.subject.born
    if born is None or not is_adult(born, now):  # the minor itself, too
        raise FailedPrecondition("the guardian is not an adult", reason="GUARDIAN_NOT_ADULT")
    if found is None or found.kind is not SubjectKind.NATURAL_PERSON or found.public_jwk is None:
        raise FailedPrecondition(
            "the guardian is not a natural person on record with a registered key",
            reason="GUARDIAN_NOT_REGISTERED",
        )
    signature = guardian.signature
    if not check(found.public_jwk, signature.key_id, artefact, signature.value):
        raise PermissionDenied(
            "the guardian's signature does not verify over the consent artefact with a key it "
            "registered",
            reason="GUARDIAN_SIGNATURE_INVALID",
        )
    return found.id


def status_change(
    consent: Consent, target: ConsentStatus, actor: str, now: datetime
) -> StatusChange:
    """The move of `consent` to `target` at `now`, from the status it has in effect then (a
    lapsed one is expired or exhausted, whatever its row says, and so final), or
    FailedPrecondition naming that status."""
    transition(consent.effective_status(now), target)
    return StatusChange(consent.id, target, actor, now)


def stored_as(state: ReadState, subject: Subject) -> StoredSubject | None:
    """The subject read, if it is on record as the kind `subject` is; one of another kind (the
    same code read as the other identifier) is refused SUBJECT_KIND_MISMATCH, never mixed."""
    stored = state.subject
    check_subject_kind(None if stored is None else stored.kind, subject.kind)
    return stored


def own_consent(state: ReadState) -> Consent:
    """The consent read, if it is the subject's; another's is answered as if absent."""
    consent = state.consent
    if consent is None or state.subject is None or consent.subject_id != state.subject.id:
        raise NotFound("no such consent", reason="CONSENT_NOT_FOUND")
    return consent


def pending_request(state: ReadState) -> ConsentRequest:
    """The request read, if it is the subject's and still to be decided."""
    request = state.request
    if request is None or state.subject is None or request.subject_id != state.subject.id:
        raise NotFound("no such consent request", reason="CONSENT_REQUEST_NOT_FOUND")
    if request.status is not RequestStatus.PENDING:
        raise FailedPrecondition(
            f"request is {request.status.value}", reason="CONSENT_REQUEST_DECIDED"
        )
    return request


def subject_inquiries(state: ReadState, consent_id: str | None) -> list[dict[str, object]]:
    """The subject's audit entries; under one of its consents, when named (another's: absent)."""
    if state.subject is None:
        return []
    if consent_id:
        own_consent(state)
    return list(state.inquiries)


def inquiry_limit(limit: int) -> int:
    return min(max(limit, 1), MAX_INQUIRIES)


def for_grantee(found: _Made | None, grantee_id: str) -> _Made | None:
    """What was read, if it is made out to the grantee: a grantee sees no other's."""
    return found if found is not None and found.terms.grantee == grantee_id else None


# --- the changes -------------------------------------------------------------------------------


class Flow(Protocol[T_co]):
    def reads(self) -> Reads: ...

    def decide(self, state: ReadState) -> Writes: ...

    def result(self) -> T_co: ...

    def refusal(self, error: CallerError) -> AuditEntry | None:
        """The entry of `error` if `decide` refused with it (None: not a decision of the flow)."""
        ...


def run(flow: Flow[T], store: ConsentStore) -> T:
    """Drives a change against a store. An attempt that found its new subject added meanwhile is
    made once more, and that one reads the subject, so it cannot lose the same way. A refusal
    is recorded before it is raised (the change itself rolled back)."""
    for _ in range(2):
        try:
            done = store.change(flow.reads(), flow.decide)
        except CallerError as error:
            entry = flow.refusal(error)
            if entry is not None:
                store.record(entry)
            raise
        if done:
            return flow.result()
    raise StorageError("the subject was added concurrently twice over")


@dataclass(slots=True)
class _Seen:
    """What the entry of an attempt names, as far as the attempt got before it decided."""

    subject_id: str | None = None
    consent_id: str | None = None
    agreement_id: str | None = None
    request_id: str | None = None
    reasons: tuple[str, ...] = ()  # what the outcome came with (a guardian's authorisation)


class _Flow(Generic[T]):
    """A change and its audit entry: `_decide` applies the rules, `decide` adds the entry of
    the outcome or keeps the refusal for `run` to record."""

    method: str
    outcome: str

    def __init__(self, now: datetime, caller: str = SELF) -> None:
        self.now, self.caller = now, caller
        self._result: T | None = None
        self._seen = _Seen()
        self._refused: CallerError | None = None

    def result(self) -> T:
        assert self._result is not None, "decide() was not called"
        return self._result

    def decide(self, state: ReadState) -> Writes:
        self._seen = _Seen(None if state.subject is None else state.subject.id)
        self._refused = None
        try:
            writes = self._decide(state)
        except CallerError as error:
            self._refused = error
            raise
        return replace(writes, audit=self._entry(self.outcome, self._seen.reasons))

    def refusal(self, error: CallerError) -> AuditEntry | None:
        if error is not self._refused:
            return None
        return self._entry(REFUSED, (error.reason,) if error.reason else ())

    def _decide(self, state: ReadState) -> Writes:
        raise NotImplementedError

    def _entry(self, outcome: str, reasons: tuple[str, ...]) -> AuditEntry:
        seen = self._seen
        return decision_entry(
            at=self.now,
            caller=self.caller,
            method=self.method,
            outcome=outcome,
            reasons=reasons,
            subject_id=seen.subject_id,
            consent_id=seen.consent_id,
            agreement_id=seen.agreement_id,
            request_id=seen.request_id,
        )


class _Giving(_Flow[Consent]):
    """A change that ends in the subject's consent, signed or not as `evidence` requires, and
    authorised by a guardian where `guardian_of` requires it."""

    def __init__(
        self,
        subject: Subject,
        signature: Signature,
        catalog: Catalog,
        now: datetime,
        check: SignatureCheck,
        guardian: Guardian | None = None,
    ) -> None:
        super().__init__(now)
        self.subject, self.signature, self.catalog, self._check = subject, signature, catalog, check
        self.guardian = guardian

    def _with_guardian(self, reads: Reads) -> Reads:
        """`reads`, and the guardian named (its row: who it is, its kind and its key)."""
        if self.guardian is None:
            return reads
        return replace(reads, guardian_lookup=self.guardian.subject.lookup)

    def _give(self, stored: StoredSubject, terms: ConsentTerms, state: ReadState) -> NewConsent:
        """The consent on `terms` to the grantee read, checked in order: the grantee's standing,
        the subject's signature, then the guardian's authorisation."""
        self._seen.agreement_id = check_grantee(state.grantee, state.agreements, self.now)
        artefact = artefact_bytes(self.subject.code, terms)
        proof = evidence(stored.public_jwk, artefact, self.signature, self._check)
        guardian_id = guardian_of(
            self.subject, self.guardian, state.guardian, artefact, self.now, self._check
        )
        now = self.now
        consent = Consent(new_id("cns"), stored.id, terms, ConsentStatus.ACTIVE, 0, now, now, proof)
        self._result = consent
        self._seen.consent_id = consent.id
        if guardian_id is None:
            return NewConsent(consent, artefact, self.signature.value or None)
        assert self.guardian is not None  # guardian_of found none to name otherwise
        self._seen.reasons = (GUARDIAN_AUTHORISED,)
        return NewConsent(
            consent,
            artefact,
            self.signature.value or None,
            guardian_id,
            self.guardian.signature.value,
        )


class Grant(_Giving):
    """The subject gives consent on `terms` (GrantConsent)."""

    method, outcome = "GrantConsent", "GRANTED"

    def __init__(
        self,
        subject: Subject,
        terms: ConsentTerms,
        signature: Signature,
        catalog: Catalog,
        now: datetime,
        check: SignatureCheck,
        guardian: Guardian | None = None,
    ) -> None:
        super().__init__(subject, signature, catalog, now, check, guardian)
        terms.validate(catalog, now)  # before any read: terms that cannot be given read nothing
        self.terms = terms

    def reads(self) -> Reads:
        return self._with_guardian(
            Reads(subject_lookup=self.subject.lookup, grantee_id=self.terms.grantee)
        )

    def _decide(self, state: ReadState) -> Writes:
        stored, new = _subject(state, self.subject, self.now)
        given = self._give(stored, self.terms, state)
        self._seen.subject_id = stored.id  # a new one only now: a refusal rolls it back
        return Writes(subject=new, consent=given)


class Approve(_Giving):
    """The subject approves a grantee's request: consent on the request's terms."""

    method, outcome = "ApproveConsentRequest", "APPROVED"

    def __init__(
        self,
        subject: Subject,
        request_id: str,
        signature: Signature,
        catalog: Catalog,
        now: datetime,
        check: SignatureCheck,
        guardian: Guardian | None = None,
    ) -> None:
        super().__init__(subject, signature, catalog, now, check, guardian)
        self.request_id = request_id

    def reads(self) -> Reads:
        return self._with_guardian(
            Reads(
                subject_lookup=self.subject.lookup, request_id=self.request_id, request_grantee=True
            )
        )

    def _decide(self, state: ReadState) -> Writes:
        self._seen.request_id = self.request_id
        stored_as(state, self.subject)
        request = pending_request(state)
        assert state.subject is not None  # pending_request refused otherwise
        # As for a grant: the terms asked for may have outlived their catalog or their validity.
        request.terms.validate(self.catalog, self.now)
        given = self._give(state.subject, request.terms, state)
        decision = RequestDecision(
            request.id, RequestStatus.APPROVED, state.subject.id, self.now, given.consent.id
        )
        return Writes(consent=given, decision=decision)


class Reject(_Flow[ConsentRequest]):
    """The subject rejects a grantee's request."""

    method, outcome = "RejectConsentRequest", "REJECTED"

    def __init__(self, subject: Subject, request_id: str, now: datetime) -> None:
        super().__init__(now)
        self.subject, self.request_id = subject, request_id

    def reads(self) -> Reads:
        return Reads(subject_lookup=self.subject.lookup, request_id=self.request_id)

    def _decide(self, state: ReadState) -> Writes:
        self._seen.request_id = self.request_id
        stored_as(state, self.subject)
        request = pending_request(state)
        assert state.subject is not None  # pending_request refused otherwise
        status = RequestStatus.REJECTED
        self._result = replace(request, status=status)
        return Writes(decision=RequestDecision(request.id, status, state.subject.id, self.now))


class Change(_Flow[Consent]):
    """The subject revokes, pauses or resumes one of its consents."""

    _NAMES: ClassVar[dict[ConsentStatus, tuple[str, str]]] = {
        ConsentStatus.REVOKED: ("RevokeConsent", "REVOKED"),
        ConsentStatus.PAUSED: ("PauseConsent", "PAUSED"),
        ConsentStatus.ACTIVE: ("ResumeConsent", "RESUMED"),
    }

    def __init__(
        self, subject: Subject, consent_id: str, target: ConsentStatus, now: datetime
    ) -> None:
        super().__init__(now)
        self.subject, self.consent_id, self.target = subject, consent_id, target
        self.method, self.outcome = self._NAMES[target]

    def reads(self) -> Reads:
        return Reads(subject_lookup=self.subject.lookup, consent_id=self.consent_id)

    def _decide(self, state: ReadState) -> Writes:
        self._seen.consent_id = self.consent_id  # as asked: a refusal names what it refused
        stored_as(state, self.subject)
        consent = own_consent(state)
        assert state.subject is not None  # own_consent refused otherwise
        change = status_change(consent, self.target, state.subject.id, self.now)
        self._result = replace(consent, status=self.target, status_changed_at=self.now)
        return Writes(change=change)


class Ask(_Flow[ConsentRequest]):
    """A grantee asks a subject for consent on `terms` (RequestConsent)."""

    method, outcome = "RequestConsent", "REQUESTED"

    def __init__(
        self,
        grantee_id: str,
        subject: Subject,
        terms: ConsentTerms,
        catalog: Catalog,
        now: datetime,
    ) -> None:
        super().__init__(now, grantee_id)
        if terms.grantee != grantee_id:
            raise InvalidArgument.field(
                "terms.grantee", "a grantee asks for consent for itself only"
            )
        terms.validate(catalog, now)
        self.subject, self.terms = subject, terms

    def reads(self) -> Reads:
        return Reads(subject_lookup=self.subject.lookup, grantee_id=self.terms.grantee)

    def _decide(self, state: ReadState) -> Writes:
        self._seen.agreement_id = check_grantee(state.grantee, state.agreements, self.now)
        stored, new = _subject(state, self.subject, self.now)
        self._result = ConsentRequest(
            new_id("crq"), stored.id, self.terms, RequestStatus.PENDING, self.now
        )
        self._seen.subject_id, self._seen.request_id = stored.id, self._result.id
        return Writes(subject=new, request=self._result)


def _subject(
    state: ReadState, subject: Subject, now: datetime
) -> tuple[StoredSubject, NewSubject | None]:
    """The subject as read, or as it is added now (first named by this consent or request)."""
    stored = stored_as(state, subject)
    if stored is not None:
        return stored, None
    new = NewSubject(new_id("sbj"), subject, now)
    return StoredSubject(new.id, None), new
