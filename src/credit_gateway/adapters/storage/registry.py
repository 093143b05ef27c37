"""The registry's transactions, each one on a Database: participants (their keys, licences and
standing), agreements and subjects' keys. For the operator's actions (services/operator.py) and
the services' look-ups, which so hold no Session."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import keys as key_store
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage import trust
from credit_gateway.adapters.storage.db import Database
from credit_gateway.crypto.master import MasterKey
from credit_gateway.domain.agreements import Agreement, AgreementStatus
from credit_gateway.domain.participants import Participant, ParticipantStatus
from credit_gateway.domain.release import Subject as NamedSubject
from credit_gateway.domain.release import check_subject_kind

Jwks = dict[str, object]


# --- participants ------------------------------------------------------------------------------


def add_participant(
    db: Database,
    participant: Participant,
    jwks: Jwks,
    certificates: Iterable[tuple[str, datetime]],
    now: datetime,
) -> None:
    with db.transaction() as session:
        trust.add_participant(session, participant, jwks, certificates, now)


def suspend_participant(db: Database, participant_id: str) -> None:
    with db.transaction() as session:
        trust.set_participant_status(session, participant_id, ParticipantStatus.SUSPENDED)


def list_participants(db: Database) -> list[Participant]:
    with db.transaction(write=False) as session:
        return trust.list_participants(session)


def set_licence(
    db: Database, participant_id: str, *, valid_until: datetime | None, revoked: bool | None
) -> None:
    with db.transaction() as session:
        trust.set_licence(session, participant_id, valid_until=valid_until, revoked=revoked)


def participant_jwks(db: Database, participant_id: str) -> Jwks | None:
    with db.transaction(write=False) as session:
        return trust.participant_jwks(session, participant_id)


# --- agreements --------------------------------------------------------------------------------


def register_agreement(
    db: Database,
    counterparty: str,
    verify: Callable[[Jwks | None], Agreement],
    document: bytes,
    now: datetime,
) -> Agreement:
    """Registers the agreement that `verify` returns, given the counterparty's keys as
    registered (None: not a participant) in the same transaction."""
    with db.transaction() as session:
        agreement = verify(trust.participant_jwks(session, counterparty))
        agreement_store.register_agreement(session, agreement, document, now)
    return agreement


def suspend_agreement(db: Database, agreement_id: str) -> None:
    with db.transaction() as session:
        agreement_store.set_agreement_status(session, agreement_id, AgreementStatus.SUSPENDED)


def list_agreements(
    db: Database, counterparty: str | None = None
) -> list[tuple[Agreement, AgreementStatus]]:
    """Every registered agreement, or only those whose counterparty is `counterparty` (what
    DiscoveryService.ListAgreements shows a participant: its own, never another's)."""
    with db.transaction(write=False) as session:
        return agreement_store.list_agreements(session, counterparty)


# --- subjects ----------------------------------------------------------------------------------


def register_subject_key(
    db: Database, master: MasterKey, subject: NamedSubject, public_jwk: str, now: datetime
) -> None:
    """Sets the subject's public key, the subject added if it has no row yet (its code sealed
    under the current data key, read in the same transaction)."""
    with db.transaction() as session:
        envelope = key_store.load_envelope(session, master)
        found = record_store.ensure_subject(
            session, envelope, subject.lookup, subject.code, subject.kind, now
        )
        check_subject_kind(found.kind, subject.kind)  # one code, one subject, one kind
        record_store.set_subject_key(session, found.id, public_jwk)
