"""The registry's transactions, each one on a Database: participants (their keys, licences and
standing), agreements and subjects' keys. For the operator's actions (services/operator.py) and
the services' look-ups, which so hold no Session. Each action appends its audit entry (caller
"operator", method the action) in its own transaction, so it is on record if and only if it
was made; `mac_key` is the entries' MAC key."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import catalog as catalog_store
from credit_gateway.adapters.storage import keys as key_store
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage import trust
from credit_gateway.adapters.storage.db import Database
from credit_gateway.crypto.master import MasterKey
from credit_gateway.domain.agreements import Agreement, AgreementStatus
from credit_gateway.domain.audit import MAC_LABEL, OPERATOR, decision_entry
from credit_gateway.domain.catalog import Catalog
from credit_gateway.domain.participants import Participant, ParticipantStatus
from credit_gateway.domain.release import Subject as NamedSubject
from credit_gateway.domain.release import check_subject_kind

Jwks = dict[str, object]


def _record(
    session: Session,
    mac_key: bytes,
    method: str,
    outcome: str,
    now: datetime,
    *,
    items: tuple[str, ...] = (),
    subject_id: str | None = None,
    agreement_id: str | None = None,
) -> None:
    """The action's entry: `items` names the participant or catalog version it acted on."""
    entry = decision_entry(
        at=now,
        caller=OPERATOR,
        method=method,
        outcome=outcome,
        items=items,
        subject_id=subject_id,
        agreement_id=agreement_id,
    )
    audit_store.append(session, mac_key, entry)


# --- participants ------------------------------------------------------------------------------


def add_participant(
    db: Database,
    mac_key: bytes,
    participant: Participant,
    jwks: Jwks,
    certificates: Iterable[tuple[str, datetime]],
    now: datetime,
) -> None:
    with db.transaction() as session:
        trust.add_participant(session, participant, jwks, certificates, now)
        _record(session, mac_key, "participants.add", "ADDED", now, items=(participant.id,))


def suspend_participant(db: Database, mac_key: bytes, participant_id: str, now: datetime) -> None:
    with db.transaction() as session:
        trust.set_participant_status(session, participant_id, ParticipantStatus.SUSPENDED)
        _record(session, mac_key, "participants.suspend", "SUSPENDED", now, items=(participant_id,))


def list_participants(db: Database) -> list[Participant]:
    with db.transaction(write=False) as session:
        return trust.list_participants(session)


def set_licence(
    db: Database,
    mac_key: bytes,
    participant_id: str,
    now: datetime,
    *,
    valid_until: datetime | None,
    revoked: bool | None,
) -> None:
    with db.transaction() as session:
        trust.set_licence(session, participant_id, valid_until=valid_until, revoked=revoked)
        outcome = "LICENCE_REVOKED" if revoked else "LICENCE_CHANGED"
        _record(session, mac_key, "participants.licence", outcome, now, items=(participant_id,))


def participant_jwks(db: Database, participant_id: str) -> Jwks | None:
    with db.transaction(write=False) as session:
        return trust.participant_jwks(session, participant_id)


# --- agreements --------------------------------------------------------------------------------


def register_agreement(
    db: Database,
    mac_key: bytes,
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
        _record(
            session,
            mac_key,
            "agreements.register",
            "REGISTERED",
            now,
            items=(counterparty,),
            agreement_id=agreement.id,
        )
    return agreement


def suspend_agreement(db: Database, mac_key: bytes, agreement_id: str, now: datetime) -> None:
    with db.transaction() as session:
        agreement_store.set_agreement_status(session, agreement_id, AgreementStatus.SUSPENDED)
        _record(session, mac_key, "agreements.suspend", "SUSPENDED", now, agreement_id=agreement_id)


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
        _record(
            session,
            master.derive(MAC_LABEL),
            "subjects.register-key",
            "REGISTERED",
            now,
            subject_id=found.id,  # never its code
        )


# --- the catalog -------------------------------------------------------------------------------


def load_catalog(
    db: Database, mac_key: bytes, document: dict[str, object], now: datetime
) -> Catalog:
    """Stores the catalog and makes it current (storage/catalog.py), on record."""
    with db.transaction() as session:
        catalog = catalog_store.store_catalog(session, document, now)
        _record(session, mac_key, "catalog.load", "LOADED", now, items=(catalog.version,))
    return catalog
