"""The consent lifecycle (consent/lifecycle.py) against an in-memory store: no database.

`FakeStore` keeps the rows in dicts and holds what a ConsentStore promises: a change's reads
and writes are one transaction (an exception from `decide` leaves the rows as they were), and a
change whose new subject was added meanwhile by another call is rolled back (`races` makes the
next ones lose so). Every rule is checked for what it allows and for what it refuses, with the
refusal's reason and nothing written but its audit entry, which `record` keeps apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credit_gateway.consent import lifecycle
from credit_gateway.consent.lifecycle import (
    EVIDENCE_REAL_NAME,
    EVIDENCE_SIGNATURE,
    Approve,
    Ask,
    Change,
    Grant,
    Reads,
    ReadState,
    Reject,
    Signature,
    StoredSubject,
    Writes,
)
from credit_gateway.domain.agreements import Agreement, AgreementStatus, Operation, Quotas
from credit_gateway.domain.audit import CONSENT_METHODS, AuditEntry
from credit_gateway.domain.catalog import Catalog, Category, DisclosureLevel
from credit_gateway.domain.consent import (
    Consent,
    ConsentRequest,
    ConsentStatus,
    ConsentTerms,
    RequestStatus,
    artefact_bytes,
)
from credit_gateway.domain.decisions import Reason
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.participants import (
    Licence,
    Participant,
    ParticipantKind,
    ParticipantStatus,
)
from credit_gateway.domain.policy import AgreementState, not_in_force
from credit_gateway.domain.release import Subject
from credit_gateway.errors import (
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StorageError,
)

CATALOG = Catalog.from_document(
    json.loads(
        (Path(__file__).resolve().parents[3] / "src/credit_gateway/data/catalog.json").read_text()
    )
)
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
AGENCY = "zx-credit"
PERSON = Subject(SubjectKind.NATURAL_PERSON, "11010519491231002X", "lookup-person")
OTHER = Subject(SubjectKind.NATURAL_PERSON, "420106198501011233", "lookup-other")
PERSON_ID, OTHER_ID = "sbj_person", "sbj_other"
CONSENT, REQUEST = "cns_1", "crq_1"
JWK = '{"kty": "EC"}'  # what the fake check below takes for the subject's registered key
GOOD = Signature(b"good", "kid-1")
UNSIGNED = Signature()

S = ConsentStatus


def check(public_jwk: str, key_id: str, data: bytes, signature: bytes) -> bool:
    """Verifies when the subject signed exactly PERSON's artefact of TERMS with its key."""
    return public_jwk == JWK and key_id == "kid-1" and signature == b"good" and data == ARTEFACT


# --- the world ---------------------------------------------------------------------------------


def terms(**changes: Any) -> ConsentTerms:
    base = ConsentTerms(
        grantee=AGENCY,
        purpose_code="LOAN_APPROVAL",
        purpose_text="mortgage application",
        item_codes=frozenset({"ADM.PUNISHMENT"}),
        categories=frozenset(),
        data_from=NOW - 365 * DAY,
        data_to=NOW + DAY,
        valid_from=NOW - timedelta(minutes=1),
        valid_until=NOW + 30 * DAY,
        max_uses=5,
    )
    return replace(base, **changes)


TERMS = terms()
ARTEFACT = artefact_bytes(PERSON.code, TERMS)


def agency(**changes: Any) -> Participant:
    base = Participant(
        AGENCY,
        ParticipantKind.CREDIT_AGENCY,
        "91350100M000100Y43",
        "ZX Credit",
        ParticipantStatus.ACTIVE,
        frozenset(),
        Licence("L-1", NOW + 365 * DAY),
    )
    return replace(base, **changes)


def agreement(status: AgreementStatus = AgreementStatus.ACTIVE, **changes: Any) -> AgreementState:
    base = Agreement(
        id="agr-zx",
        counterparty=AGENCY,
        operations=frozenset({Operation.INQUIRY}),
        items=frozenset(),
        categories=frozenset({Category.ADMINISTRATIVE_PUNISHMENT}),
        purposes=frozenset({"LOAN_APPROVAL"}),
        levels=frozenset({DisclosureLevel.OPEN, DisclosureLevel.AUTHORIZED}),
        subject_kinds=frozenset(SubjectKind),
        quotas=Quotas(100, 1000),
        valid_from=NOW - DAY,
        valid_until=NOW + 365 * DAY,
    )
    return AgreementState(replace(base, **changes), status)


def consent(subject_id: str = PERSON_ID, **changes: Any) -> Consent:
    base = Consent(CONSENT, subject_id, TERMS, S.ACTIVE, 0, NOW - DAY, NOW - DAY, "real_name")
    return replace(base, **changes)


def request(subject_id: str = PERSON_ID, **changes: Any) -> ConsentRequest:
    base = ConsentRequest(REQUEST, subject_id, TERMS, RequestStatus.PENDING, NOW - DAY)
    return replace(base, **changes)


# --- the in-memory store -----------------------------------------------------------------------


@dataclass
class FakeStore:
    subjects: dict[str, StoredSubject] = field(default_factory=dict)  # by lookup key
    consents: dict[str, Consent] = field(default_factory=dict)
    requests: dict[str, ConsentRequest] = field(default_factory=dict)
    participants: dict[str, Participant] = field(default_factory=lambda: {AGENCY: agency()})
    agreements: list[AgreementState] = field(default_factory=lambda: [agreement()])
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (row, to, actor)
    artefacts: dict[str, tuple[bytes, bytes | None]] = field(default_factory=dict)
    attempts: list[Reads] = field(default_factory=list)
    races: int = 0  # the next changes that add a subject find it added meanwhile
    audit: list[AuditEntry] = field(default_factory=list)  # committed changes' and refusals'

    def read(self, reads: Reads) -> ReadState:
        found_request = self.requests.get(reads.request_id or "")
        grantee = reads.grantee_id
        if reads.request_grantee and found_request is not None:
            grantee = found_request.terms.grantee
        return ReadState(
            subject=self.subjects.get(reads.subject_lookup or ""),
            consent=self.consents.get(reads.consent_id or ""),
            request=found_request,
            grantee=self.participants.get(grantee or ""),
            agreements=tuple(
                a for a in self.agreements if grantee and a.agreement.counterparty == grantee
            ),
        )

    def change(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
        self.attempts.append(reads)
        writes = decide(self.read(reads))  # a refusal raises: nothing below is written
        if writes.subject is not None:
            new = writes.subject
            if self.races:  # another call added it first: this attempt is rolled back
                self.races -= 1
                self.subjects[new.subject.lookup] = StoredSubject("sbj_theirs", None)
                return False
            self.subjects[new.subject.lookup] = StoredSubject(new.id, None)
        if writes.consent is not None:
            given = writes.consent
            self.consents[given.consent.id] = given.consent
            self.artefacts[given.consent.id] = (given.artefact, given.signature)
            self.events.append((given.consent.id, given.consent.status.value, "subject"))
        if writes.request is not None:
            self.requests[writes.request.id] = writes.request
            self.events.append((writes.request.id, "pending", writes.request.terms.grantee))
        if writes.decision is not None:
            d = writes.decision
            self.requests[d.request_id] = replace(
                self.requests[d.request_id], status=d.status, consent_id=d.consent_id
            )
            self.events.append((d.request_id, d.status.value, d.actor))
        if writes.change is not None:
            c = writes.change
            self.consents[c.consent_id] = replace(
                self.consents[c.consent_id], status=c.status, status_changed_at=c.at
            )
            self.events.append((c.consent_id, c.status.value, c.actor))
        assert writes.audit is not None, "every change is on record"
        self.audit.append(writes.audit)
        return True

    def record(self, entry: AuditEntry) -> None:
        self.audit.append(entry)

    def snapshot(self) -> tuple[object, ...]:
        return dict(self.subjects), dict(self.consents), dict(self.requests), list(self.events)


def with_person(jwk: str | None = None, **rows: Any) -> FakeStore:
    """A store in which PERSON and OTHER exist (PERSON with `jwk` registered)."""
    store = FakeStore(**rows)
    store.subjects[PERSON.lookup] = StoredSubject(PERSON_ID, jwk)
    store.subjects[OTHER.lookup] = StoredSubject(OTHER_ID, None)
    return store


def refused(store: FakeStore, call: Callable[[], object]) -> GatewayError:
    """The call's refusal, after checking that it left every row as it was."""
    before = store.snapshot()
    with pytest.raises(GatewayError) as caught:
        call()
    assert store.snapshot() == before
    return caught.value


def grant(
    store: FakeStore, signature: Signature = UNSIGNED, subject: Subject = PERSON, **changes: Any
) -> Consent:
    flow = Grant(subject, terms(**changes), signature, CATALOG, NOW, check)
    return lifecycle.run(flow, store)


# --- transitions -------------------------------------------------------------------------------


ALLOWED = {
    (S.ACTIVE, S.PAUSED),
    (S.ACTIVE, S.REVOKED),
    (S.PAUSED, S.ACTIVE),
    (S.PAUSED, S.REVOKED),
}
TARGETS = (S.ACTIVE, S.PAUSED, S.REVOKED)  # ResumeConsent, PauseConsent, RevokeConsent


@pytest.mark.parametrize("target", TARGETS, ids=lambda s: f"to-{s.value}")
@pytest.mark.parametrize("stored", list(S), ids=lambda s: f"from-{s.value}")
def test_every_transition_is_allowed_or_refused_with_the_status_it_comes_from(
    stored: ConsentStatus, target: ConsentStatus
) -> None:
    store = with_person(consents={CONSENT: consent(status=stored)})
    flow = Change(PERSON, CONSENT, target, NOW)

    if (stored, target) in ALLOWED:
        changed = lifecycle.run(flow, store)
        assert (changed.status, changed.status_changed_at) == (target, NOW)
        assert store.consents[CONSENT] == changed
        assert store.events == [(CONSENT, target.value, PERSON_ID)]  # the subject made it
    else:
        error = refused(store, lambda: lifecycle.run(flow, store))
        assert (type(error), error.reason) == (FailedPrecondition, f"CONSENT_{stored.name}")


@pytest.mark.parametrize(
    ("lapsed", "status"),
    [
        (consent(terms=terms(valid_until=NOW)), S.EXPIRED),
        (consent(uses=5), S.EXHAUSTED),
        (consent(status=S.PAUSED, uses=5), S.EXHAUSTED),
    ],
    ids=["validity-ended", "uses-spent", "paused-uses-spent"],
)
@pytest.mark.parametrize("target", TARGETS, ids=lambda s: f"to-{s.value}")
def test_a_consent_that_lapsed_is_final_whatever_its_row_says(
    lapsed: Consent, status: ConsentStatus, target: ConsentStatus
) -> None:
    store = with_person(consents={CONSENT: lapsed})
    error = refused(store, lambda: lifecycle.run(Change(PERSON, CONSENT, target, NOW), store))
    assert (type(error), error.reason) == (FailedPrecondition, f"CONSENT_{status.name}")


@pytest.mark.parametrize(
    "rows",
    [
        lambda: with_person(consents={CONSENT: consent(OTHER_ID)}),  # another subject's
        with_person,  # none at all
        lambda: FakeStore(consents={CONSENT: consent()}),  # the subject was never named
    ],
    ids=["anothers", "absent", "unknown-subject"],
)
@pytest.mark.parametrize("target", TARGETS, ids=lambda s: f"to-{s.value}")
def test_a_consent_not_the_subjects_is_answered_as_absent(
    rows: Callable[[], FakeStore], target: ConsentStatus
) -> None:
    store = rows()
    flow = Change(PERSON, CONSENT, target, NOW)
    error = refused(store, lambda: lifecycle.run(flow, store))
    assert (type(error), error.reason) == (NotFound, "CONSENT_NOT_FOUND")
    with pytest.raises(NotFound):
        lifecycle.own_consent(store.read(Reads(subject_lookup=PERSON.lookup, consent_id=CONSENT)))


def test_a_change_reads_the_subject_and_the_consent_it_changes() -> None:
    store = with_person(consents={CONSENT: consent()})
    lifecycle.run(Change(PERSON, CONSENT, S.REVOKED, NOW), store)
    assert store.attempts == [Reads(subject_lookup=PERSON.lookup, consent_id=CONSENT)]


# --- granting ----------------------------------------------------------------------------------


def test_a_grant_by_a_subject_named_for_the_first_time_adds_it_with_the_consent() -> None:
    store = FakeStore()
    granted = grant(store)
    assert granted.subject_id == store.subjects[PERSON.lookup].id
    assert (granted.status, granted.uses, granted.evidence) == (S.ACTIVE, 0, EVIDENCE_REAL_NAME)
    assert (granted.granted_at, granted.status_changed_at, granted.terms) == (NOW, NOW, TERMS)
    assert store.artefacts[granted.id] == (ARTEFACT, None)
    assert store.attempts == [Reads(subject_lookup=PERSON.lookup, grantee_id=AGENCY)]


def test_a_grant_by_a_known_subject_adds_only_the_consent() -> None:
    store = with_person()
    granted = grant(store)
    assert granted.subject_id == PERSON_ID
    assert store.subjects[PERSON.lookup] == StoredSubject(PERSON_ID, None)
    assert list(store.consents) == [granted.id]


def test_a_subject_added_meanwhile_by_another_call_is_used_on_the_second_attempt() -> None:
    store = FakeStore(races=1)
    granted = grant(store)
    assert granted.subject_id == "sbj_theirs"
    assert len(store.attempts) == 2
    assert list(store.consents) == [granted.id]


def test_a_store_that_never_commits_is_a_storage_error() -> None:
    class Lost(FakeStore):
        def change(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
            self.attempts.append(reads)
            decide(self.read(reads))
            return False  # rolled back, as if the new subject were added meanwhile every time

    store = Lost()
    with pytest.raises(StorageError):
        grant(store)
    assert len(store.attempts) == 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"purpose_code": "MARKETING"}, "terms.purpose_code"),
        ({"valid_from": NOW, "valid_until": NOW + 91 * DAY}, "terms.valid_until"),
        ({"max_uses": 13}, "terms.max_uses"),
        ({"valid_from": NOW - 2 * DAY, "valid_until": NOW}, "terms.valid_until"),
        ({"item_codes": frozenset({"NOPE.ITEM"})}, "terms.item_codes"),
    ],
    ids=["purpose-not-listed", "validity-too-long", "too-many-uses", "ended", "unknown-item"],
)
def test_terms_outside_their_purposes_limits_are_refused_before_anything_is_read(
    changes: dict[str, Any], field: str
) -> None:
    store = with_person()
    error = refused(store, lambda: grant(store, **changes))
    assert isinstance(error, InvalidArgument)
    assert error.reason == "CONSENT_TERMS_INVALID"
    assert field in {v.field for v in error.violations}
    assert store.attempts == []


NOT_ELIGIBLE = "not a licensed credit service establishment"
NO_AGREEMENT = "has no agreement in force"


@pytest.mark.parametrize(
    ("participants", "agreements", "why"),
    [
        ({}, [agreement()], NOT_ELIGIBLE),
        ({AGENCY: agency(kind=ParticipantKind.PROVIDING_UNIT)}, [agreement()], NOT_ELIGIBLE),
        ({AGENCY: agency(status=ParticipantStatus.SUSPENDED)}, [agreement()], NOT_ELIGIBLE),
        ({AGENCY: agency(licence=Licence("L-1", NOW))}, [agreement()], NOT_ELIGIBLE),
        ({AGENCY: agency(licence=Licence("L-1", NOW + DAY, True))}, [agreement()], NOT_ELIGIBLE),
        ({AGENCY: agency()}, [], NO_AGREEMENT),
        ({AGENCY: agency()}, [agreement(AgreementStatus.SUSPENDED)], NO_AGREEMENT),
        (
            {AGENCY: agency()},
            [agreement(valid_from=NOW + DAY, valid_until=NOW + 9 * DAY)],
            NO_AGREEMENT,
        ),
        ({AGENCY: agency()}, [agreement(valid_until=NOW)], NO_AGREEMENT),
        (
            {AGENCY: agency()},
            [agreement(operations=frozenset({Operation.SUBMISSION}))],
            NO_AGREEMENT,
        ),
        ({AGENCY: agency()}, [agreement(levels=frozenset({DisclosureLevel.OPEN}))], NO_AGREEMENT),
    ],
    ids=[
        "not-a-participant",
        "not-a-grantee-kind",
        "suspended",
        "licence-expired",
        "licence-revoked",
        "no-agreement",
        "agreement-suspended",
        "agreement-not-yet-valid",
        "agreement-expired",
        "agreement-without-inquiry",
        "agreement-open-only",
    ],
)
def test_a_grantee_without_standing_or_an_agreement_in_force_is_not_eligible(
    participants: dict[str, Participant], agreements: list[AgreementState], why: str
) -> None:
    store = with_person(participants=participants, agreements=agreements)
    error = refused(store, lambda: grant(store))
    assert isinstance(error, InvalidArgument)
    assert error.reason == "GRANTEE_NOT_ELIGIBLE"
    assert [(v.field, why in v.description) for v in error.violations] == [("terms.grantee", True)]


def test_an_industry_association_needs_no_licence_but_an_agreement_in_force() -> None:
    association = agency(kind=ParticipantKind.INDUSTRY_ASSOCIATION, licence=None)
    granted = grant(with_person(participants={AGENCY: association}))
    assert granted.terms.grantee == AGENCY


def test_one_agreement_in_force_among_others_is_enough() -> None:
    lapsed = agreement(valid_until=NOW)
    store = with_person(agreements=[lapsed, agreement(AgreementStatus.SUSPENDED), agreement()])
    assert grant(store).status is S.ACTIVE


@pytest.mark.parametrize(
    ("state", "operation", "reason"),
    [
        (agreement(), Operation.INQUIRY, None),
        (agreement(AgreementStatus.SUSPENDED), Operation.INQUIRY, Reason.AGREEMENT_SUSPENDED),
        (agreement(valid_from=NOW + DAY), Operation.INQUIRY, Reason.AGREEMENT_NOT_YET_VALID),
        (agreement(valid_until=NOW), Operation.INQUIRY, Reason.AGREEMENT_EXPIRED),
        (agreement(), Operation.GOVERNMENT_SHARING, Reason.OPERATION_NOT_AGREED),
    ],
    ids=["in-force", "suspended", "not-yet-valid", "expired", "other-operation"],
)
def test_an_agreement_is_in_force_for_an_operation_by_one_definition(
    state: AgreementState, operation: Operation, reason: Reason | None
) -> None:
    # The same function refuses a release under the agreement (domain/policy.py decide).
    assert not_in_force(state, operation, NOW) == reason


# --- the subject's signature -------------------------------------------------------------------


def test_a_subject_with_a_registered_key_is_granted_on_its_signature() -> None:
    store = with_person(JWK)
    granted = grant(store, GOOD)
    assert granted.evidence == EVIDENCE_SIGNATURE
    assert store.artefacts[granted.id] == (ARTEFACT, b"good")


@pytest.mark.parametrize(
    ("jwk", "signature", "error", "reason"),
    [
        (None, GOOD, InvalidArgument, "SUBJECT_KEY_NOT_REGISTERED"),
        (JWK, UNSIGNED, PermissionDenied, "SUBJECT_SIGNATURE_REQUIRED"),
        (JWK, Signature(b"forged", "kid-1"), PermissionDenied, "SUBJECT_SIGNATURE_INVALID"),
        (JWK, Signature(b"good", "kid-2"), PermissionDenied, "SUBJECT_SIGNATURE_INVALID"),
    ],
    ids=["signed-without-a-key", "keyed-but-unsigned", "bad-signature", "unregistered-key"],
)
def test_the_signature_a_subject_must_or_must_not_send(
    jwk: str | None, signature: Signature, error: type[GatewayError], reason: str
) -> None:
    store = with_person(jwk)
    caught = refused(store, lambda: grant(store, signature))
    assert (type(caught), caught.reason) == (error, reason)


def test_a_signature_over_other_terms_does_not_verify() -> None:
    store = with_person(JWK)
    caught = refused(store, lambda: grant(store, GOOD, max_uses=4))  # signed: max_uses=5
    assert caught.reason == "SUBJECT_SIGNATURE_INVALID"


def test_the_grantee_is_checked_before_the_signature() -> None:
    store = with_person(JWK, agreements=[])
    assert refused(store, lambda: grant(store)).reason == "GRANTEE_NOT_ELIGIBLE"


# --- requests ----------------------------------------------------------------------------------


def ask(store: FakeStore, grantee: str = AGENCY) -> ConsentRequest:
    return lifecycle.run(Ask(grantee, PERSON, TERMS, CATALOG, NOW), store)


def approve(store: FakeStore, signature: Signature = UNSIGNED) -> Consent:
    return lifecycle.run(Approve(PERSON, REQUEST, signature, CATALOG, NOW, check), store)


def reject(store: FakeStore) -> ConsentRequest:
    return lifecycle.run(Reject(PERSON, REQUEST, NOW), store)


def test_a_grantee_asks_a_subject_named_for_the_first_time() -> None:
    store = FakeStore()
    asked = ask(store)
    assert asked.subject_id == store.subjects[PERSON.lookup].id
    assert (asked.status, asked.terms, asked.requested_at) == (RequestStatus.PENDING, TERMS, NOW)
    assert store.requests == {asked.id: asked}
    assert store.events == [(asked.id, "pending", AGENCY)]


def test_a_grantee_asks_for_consent_for_itself_only() -> None:
    store = with_person()
    error = refused(store, lambda: ask(store, grantee="other-credit"))
    assert isinstance(error, InvalidArgument)
    assert [v.field for v in error.violations] == ["terms.grantee"]
    assert store.attempts == []


def test_a_grantee_not_eligible_cannot_ask() -> None:
    store = with_person(agreements=[agreement(AgreementStatus.SUSPENDED)])
    assert refused(store, lambda: ask(store)).reason == "GRANTEE_NOT_ELIGIBLE"


def test_an_approved_request_gives_consent_on_its_terms_and_names_it() -> None:
    store = with_person(requests={REQUEST: request()})
    granted = approve(store)
    assert (granted.subject_id, granted.terms) == (PERSON_ID, TERMS)
    assert granted.evidence == EVIDENCE_REAL_NAME
    decided = store.requests[REQUEST]
    assert (decided.status, decided.consent_id) == (RequestStatus.APPROVED, granted.id)
    assert store.events == [(granted.id, "active", "subject"), (REQUEST, "approved", PERSON_ID)]
    assert store.attempts == [
        Reads(subject_lookup=PERSON.lookup, request_id=REQUEST, request_grantee=True)
    ]


def test_a_keyed_subject_approves_by_signing_the_terms_it_was_shown() -> None:
    store = with_person(JWK, requests={REQUEST: request()})
    assert refused(store, lambda: approve(store)).reason == "SUBJECT_SIGNATURE_REQUIRED"
    assert approve(store, GOOD).evidence == EVIDENCE_SIGNATURE


def test_a_rejected_request_is_decided_and_gives_no_consent() -> None:
    store = with_person(requests={REQUEST: request()})
    rejected = reject(store)
    assert rejected == replace(request(), status=RequestStatus.REJECTED)
    assert store.requests[REQUEST] == rejected
    assert store.consents == {}
    assert store.events == [(REQUEST, "rejected", PERSON_ID)]


@pytest.mark.parametrize("decide", [approve, reject], ids=["approve", "reject"])
@pytest.mark.parametrize("status", [RequestStatus.APPROVED, RequestStatus.REJECTED])
def test_a_request_is_decided_once(
    decide: Callable[[FakeStore], object], status: RequestStatus
) -> None:
    store = with_person(requests={REQUEST: request(status=status)})
    error = refused(store, lambda: decide(store))
    assert (type(error), error.reason) == (FailedPrecondition, "CONSENT_REQUEST_DECIDED")


@pytest.mark.parametrize("decide", [approve, reject], ids=["approve", "reject"])
@pytest.mark.parametrize(
    "rows",
    [
        lambda: with_person(requests={REQUEST: request(OTHER_ID)}),
        with_person,
        lambda: FakeStore(requests={REQUEST: request()}),
    ],
    ids=["anothers", "absent", "unknown-subject"],
)
def test_a_request_not_the_subjects_is_answered_as_absent(
    decide: Callable[[FakeStore], object], rows: Callable[[], FakeStore]
) -> None:
    store = rows()
    error = refused(store, lambda: decide(store))
    assert (type(error), error.reason) == (NotFound, "CONSENT_REQUEST_NOT_FOUND")


def test_a_request_is_approved_only_while_its_terms_and_grantee_still_qualify() -> None:
    stale = request(terms=terms(valid_from=NOW - 9 * DAY, valid_until=NOW))
    store = with_person(requests={REQUEST: stale})
    assert refused(store, lambda: approve(store)).reason == "CONSENT_TERMS_INVALID"
    store = with_person(requests={REQUEST: request()}, agreements=[agreement(valid_until=NOW)])
    assert refused(store, lambda: approve(store)).reason == "GRANTEE_NOT_ELIGIBLE"


# --- what the subject and the grantee may see --------------------------------------------------


def test_the_subjects_inquiries_under_a_consent_only_if_the_consent_is_its_own() -> None:
    entries: tuple[dict[str, object], ...] = ({"id": "inq_1"},)
    own = ReadState(StoredSubject(PERSON_ID, None), consent=consent(), inquiries=entries)
    assert lifecycle.subject_inquiries(own, CONSENT) == [{"id": "inq_1"}]
    assert lifecycle.subject_inquiries(own, None) == [{"id": "inq_1"}]
    theirs = replace(own, consent=consent(OTHER_ID))
    with pytest.raises(NotFound):
        lifecycle.subject_inquiries(theirs, CONSENT)
    assert lifecycle.subject_inquiries(ReadState(), CONSENT) == []  # never named: nothing


@pytest.mark.parametrize(("asked", "limit"), [(0, 1), (-5, 1), (100, 100), (5000, 1000)])
def test_the_number_of_inquiries_listed_is_bounded(asked: int, limit: int) -> None:
    assert lifecycle.inquiry_limit(asked) == limit


def test_a_grantee_sees_only_what_is_made_out_to_it() -> None:
    assert lifecycle.for_grantee(consent(), AGENCY) == consent()
    assert lifecycle.for_grantee(request(), AGENCY) == request()
    assert lifecycle.for_grantee(consent(), "other-credit") is None
    assert lifecycle.for_grantee(None, AGENCY) is None


# --- the audit entries -------------------------------------------------------------------------


def test_each_change_is_on_record_once_with_what_came_of_it() -> None:
    store = with_person()
    store.requests[REQUEST] = request()
    granted = grant(store)
    changed = lifecycle.run(Change(PERSON, granted.id, S.PAUSED, NOW), store)
    approved = lifecycle.run(Approve(PERSON, REQUEST, UNSIGNED, CATALOG, NOW, check), store)
    asked = lifecycle.run(Ask(AGENCY, OTHER, TERMS, CATALOG, NOW), store)

    named = [
        (e.caller, e.method, e.subject_id, e.consent_id, e.agreement_id, e.request_id, e.outcome)
        for e in store.audit
    ]
    assert named == [
        ("self", "GrantConsent", PERSON_ID, granted.id, "agr-zx", None, "GRANTED"),
        ("self", "PauseConsent", PERSON_ID, changed.id, None, None, "PAUSED"),
        ("self", "ApproveConsentRequest", PERSON_ID, approved.id, "agr-zx", REQUEST, "APPROVED"),
        (AGENCY, "RequestConsent", OTHER_ID, None, "agr-zx", asked.id, "REQUESTED"),
    ]
    assert all(e.at == NOW and e.reasons == () for e in store.audit)
    assert {e.method for e in store.audit} <= CONSENT_METHODS  # never listed as inquiries


def test_a_refusal_is_recorded_alone_with_its_reason() -> None:
    store = with_person(consents={CONSENT: consent(status=S.REVOKED)})
    error = refused(store, lambda: lifecycle.run(Change(PERSON, CONSENT, S.ACTIVE, NOW), store))
    [entry] = store.audit
    assert (entry.caller, entry.method, entry.subject_id, entry.consent_id) == (
        "self",
        "ResumeConsent",
        PERSON_ID,
        CONSENT,
    )
    assert (entry.outcome, entry.reasons) == ("REFUSED", (error.reason,))


def test_a_refused_signature_names_the_agreement_it_got_as_far_as() -> None:
    store = with_person(jwk=JWK)
    error = refused(store, lambda: grant(store, Signature(b"forged", "kid-1")))
    [entry] = store.audit
    assert error.reason == "SUBJECT_SIGNATURE_INVALID"
    assert (entry.subject_id, entry.agreement_id, entry.consent_id) == (PERSON_ID, "agr-zx", None)
    assert (entry.outcome, entry.reasons) == ("REFUSED", ("SUBJECT_SIGNATURE_INVALID",))


def test_a_refusal_of_a_subject_not_on_record_names_no_subject() -> None:
    store = FakeStore(participants={})  # no grantee: refused before a subject would be added
    refused(store, lambda: grant(store))
    [entry] = store.audit
    assert (entry.subject_id, entry.reasons) == (None, ("GRANTEE_NOT_ELIGIBLE",))


def test_a_call_refused_before_anything_is_read_is_not_a_decision() -> None:
    store = with_person()
    with pytest.raises(InvalidArgument):
        grant(store, max_uses=0)
    assert store.audit == []
    assert store.attempts == []


def test_a_storage_failure_is_not_recorded_as_a_refusal() -> None:
    class Broken(FakeStore):
        def change(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
            raise StorageError("the database went away")

    store = Broken()
    with pytest.raises(StorageError):
        grant(store)
    assert store.audit == []
