"""The consent lifecycle's transactions in SQL: consent/lifecycle.py's ConsentStore.

Each operation is one transaction (Database.transaction). A change reads the consent or the
request it changes FOR UPDATE, which queues it behind any other change of that row and behind a
release counting a use of the consent; it hands what it read to the flow's `decide` and writes
what that returns before it commits. A question is one read-only transaction.

What the lifecycle hands over in the clear is sealed here, at rest: a new subject's code and
the consent's artefact (crypto/envelope.py), each bound to its row. The change's audit entry is
written last, in its transaction; a refusal's alone, in one of its own (`record`).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import consents, trust
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import SubjectRow
from credit_gateway.consent.lifecycle import Reads, ReadState, StoredSubject, Writes
from credit_gateway.crypto.envelope import Envelope
from credit_gateway.domain.audit import AuditEntry
from credit_gateway.domain.consent import Consent, ConsentRequest
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.participants import Participant
from credit_gateway.domain.policy import AgreementState


class _Moved(Exception):
    """The new subject was added by a concurrent transaction: raised to roll the change back."""


class SqlConsentStore:
    """consent.lifecycle.ConsentStore on a Database. `envelope` answers the current one (the
    gateway replaces it when its keys are reloaded); `mac_key` is the audit entries' MAC key."""

    def __init__(self, db: Database, envelope: Callable[[], Envelope], mac_key: bytes) -> None:
        self._db, self._envelope, self._mac_key = db, envelope, mac_key

    def read(self, reads: Reads) -> ReadState:
        with self._db.transaction(write=False) as session:
            return self._read(session, reads, lock=False)

    def change(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
        try:
            with self._db.transaction() as session:
                self._write(session, decide(self._read(session, reads, lock=True)))
        except _Moved:
            return False
        return True

    def record(self, entry: AuditEntry) -> None:
        with self._db.transaction() as session:
            audit_store.append(session, self._mac_key, entry)

    def _read(self, session: Session, reads: Reads, *, lock: bool) -> ReadState:
        subject: StoredSubject | None = None
        code: str | None = None
        kind: SubjectKind | None = None
        consent: Consent | None = None
        request: ConsentRequest | None = None
        grantee: Participant | None = None
        if reads.subject_lookup is not None:
            subject = _stored(session, reads.subject_lookup)
        if reads.subject_id is not None:
            code = record_store.subject_code(session, self._envelope(), reads.subject_id)
            row = session.get(SubjectRow, reads.subject_id)  # read just now: no second query
            kind = None if row is None else SubjectKind(row.kind)
        if reads.consent_id is not None:
            consent = consents.get_consent(session, reads.consent_id, lock=lock)
        if reads.request_id is not None:
            request = consents.get_request(session, reads.request_id, lock=lock)
        grantee_id = reads.grantee_id
        if reads.request_grantee and request is not None:
            grantee_id = request.terms.grantee
        agreements: tuple[AgreementState, ...] = ()
        if grantee_id is not None:
            grantee = trust.get_participant(session, grantee_id)
            listed = agreement_store.list_agreements(session, counterparty=grantee_id)
            agreements = tuple(AgreementState(a, status) for a, status in listed)
        lists = ((), (), ()) if subject is None else _lists(session, subject.id, reads)
        guardian = (
            None if reads.guardian_lookup is None else _stored(session, reads.guardian_lookup)
        )
        return ReadState(
            subject, code, kind, consent, request, grantee, agreements, *lists, guardian=guardian
        )

    def _write(self, session: Session, writes: Writes) -> None:
        envelope = self._envelope()
        new = writes.subject
        if new is not None and not record_store.add_subject(
            session, envelope, new.id, new.subject, new.created_at
        ):
            raise _Moved  # leaving the block rolls the change back; it is made again on that one
        if writes.consent is not None:
            given = writes.consent
            consents.insert_consent(
                session,
                envelope,
                given.consent,
                given.artefact,
                given.signature,
                guardian_id=given.guardian_id,
                guardian_signature=given.guardian_signature,
            )
        if writes.request is not None:
            consents.insert_request(session, writes.request)
        decision = writes.decision
        if decision is not None:
            consents.decide_request(
                session,
                decision.request_id,
                decision.status,
                decision.actor,
                decision.at,
                decision.consent_id,
            )
        change = writes.change
        if change is not None:
            consents.set_status(session, change.consent_id, change.status, change.actor, change.at)
        if writes.audit is not None:
            audit_store.append(session, self._mac_key, writes.audit)


def _stored(session: Session, lookup: str) -> StoredSubject | None:
    found = record_store.find_subject(session, lookup)
    return None if found is None else StoredSubject(found.id, found.public_jwk, found.kind)


_Lists = tuple[tuple[Consent, ...], tuple[ConsentRequest, ...], tuple[dict[str, object], ...]]


def _lists(session: Session, subject_id: str, reads: Reads) -> _Lists:
    """The subject's consents, requests and audit entries, as far as asked for."""
    found_consents: tuple[Consent, ...] = ()
    found_requests: tuple[ConsentRequest, ...] = ()
    entries: tuple[dict[str, object], ...] = ()
    if reads.consents is not None:
        found_consents = tuple(consents.list_consents(session, subject_id, reads.consents))
    if reads.requests is not None:
        found_requests = tuple(consents.list_requests(session, subject_id, reads.requests))
    if reads.inquiries:
        entries = tuple(
            audit_store.subject_inquiries(session, subject_id, reads.consent_id, reads.inquiries)
        )
    return found_consents, found_requests, entries
