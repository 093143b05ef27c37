"""Participants, their certificates, client assertions and revoked tokens (the TrustStore)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.dialects import DIALECTS
from credit_gateway.adapters.storage.tables import (
    CertificateRow,
    ParticipantRow,
    RevokedTokenRow,
    UsedAssertionRow,
)
from credit_gateway.auth.ports import Client
from credit_gateway.domain.participants import (
    Licence,
    Participant,
    ParticipantKind,
    ParticipantStatus,
    Standing,
)
from credit_gateway.errors import AlreadyExists, NotFound


def _participant(row: Any) -> Participant:
    """From an ORM row or a Core row: both have the columns as attributes."""
    licence = None
    if row.licence_number is not None and row.licence_valid_until is not None:
        licence = Licence(row.licence_number, row.licence_valid_until, row.licence_revoked)
    return Participant(
        id=row.id,
        kind=ParticipantKind(row.kind),
        org_code=row.org_code,
        name=row.name,
        status=ParticipantStatus(row.status),
        scopes=frozenset(row.scopes.split()),
        licence=licence,
    )


def add_participant(
    session: Session,
    participant: Participant,
    jwks: dict[str, object],
    certificates: Iterable[tuple[str, datetime]],
    now: datetime,
) -> None:
    if session.get(ParticipantRow, participant.id) is not None:
        raise AlreadyExists(f"participant {participant.id} exists", reason="PARTICIPANT_EXISTS")
    licence = participant.licence
    session.add(
        ParticipantRow(
            id=participant.id,
            kind=participant.kind.value,
            org_code=participant.org_code,
            name=participant.name,
            status=participant.status.value,
            licence_number=licence.number if licence else None,
            licence_valid_until=licence.valid_until if licence else None,
            licence_revoked=licence.revoked if licence else False,
            scopes=" ".join(sorted(participant.scopes)),
            jwks=json.dumps(jwks, sort_keys=True),
            created_at=now,
        )
    )
    session.flush()
    for thumbprint, not_after in certificates:
        session.add(
            CertificateRow(x5t_s256=thumbprint, participant_id=participant.id, not_after=not_after)
        )
    try:
        session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(
            "certificate or organisation code already registered", reason="PARTICIPANT_EXISTS"
        ) from exc


def get_participant(session: Session, participant_id: str) -> Participant | None:
    row = session.get(ParticipantRow, participant_id)
    return None if row is None else _participant(row)


def list_participants(session: Session) -> list[Participant]:
    return [
        _participant(r) for r in session.scalars(select(ParticipantRow).order_by(ParticipantRow.id))
    ]


def set_participant_status(
    session: Session, participant_id: str, status: ParticipantStatus
) -> None:
    result = session.execute(
        update(ParticipantRow)
        .where(ParticipantRow.id == participant_id)
        .values(status=status.value)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"no participant {participant_id}", reason="PARTICIPANT_NOT_FOUND")


def set_licence(
    session: Session,
    participant_id: str,
    *,
    valid_until: datetime | None = None,
    revoked: bool | None = None,
) -> None:
    row = session.get(ParticipantRow, participant_id)
    if row is None:
        raise NotFound(f"no participant {participant_id}", reason="PARTICIPANT_NOT_FOUND")
    if valid_until is not None:
        row.licence_valid_until = valid_until
    if revoked is not None:
        row.licence_revoked = revoked


def participant_jwks(session: Session, participant_id: str) -> dict[str, object] | None:
    row = session.get(ParticipantRow, participant_id)
    return None if row is None else dict(json.loads(row.jwks))


class SqlTrustStore:
    """auth.ports.TrustStore over the database; each call is its own short transaction."""

    # Kept past expiry for longer than any verifier's leeway, so a replay inside it is caught.
    ASSERTION_RETENTION = timedelta(minutes=10)

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db, self.clock = db, clock

    def client(self, client_id: str) -> Client | None:
        with self.db.transaction(write=False) as session:
            row = session.get(ParticipantRow, client_id)
            if row is None:
                return None
            prints = session.scalars(
                select(CertificateRow.x5t_s256).where(CertificateRow.participant_id == client_id)
            )
            return Client(_participant(row), json.loads(row.jwks), frozenset(prints))

    def consume_assertion(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        with self.db.transaction() as session:
            # Rows of assertions long expired can go: an expired assertion is refused anyway.
            cutoff = self.clock() - self.ASSERTION_RETENTION
            session.execute(delete(UsedAssertionRow).where(UsedAssertionRow.expires_at < cutoff))
            try:
                with session.begin_nested():  # the primary key refuses a second use, on any replica
                    session.add(UsedAssertionRow(issuer=issuer, jti=jti, expires_at=expires_at))
            except IntegrityError:
                return False
        return True

    def revoke_token(self, jti: str, expires_at: datetime) -> None:
        with self.db.transaction() as session:
            if session.get(RevokedTokenRow, jti) is None:
                session.add(RevokedTokenRow(jti=jti, expires_at=expires_at))

    def is_revoked(self, jti: str) -> bool:
        with self.db.transaction(write=False) as session:
            return session.get(RevokedTokenRow, jti) is not None


# The caller's standing, read on every call (never cached, so suspension and revocation act at
# once): as SQL text for the driver, so that the read costs the driver's work and no more. The
# release transaction folds the same columns into its one read (storage/release_store.py).
STANDING_COLUMNS = (
    "p.id, p.kind, p.org_code, p.name, p.status, p.scopes, p.licence_number,"
    " p.licence_valid_until, p.licence_revoked,"
    " (SELECT 1 FROM revoked_tokens t WHERE t.jti = :jti)"
)
STANDING_JOIN = "LEFT OUTER JOIN participants p ON p.id = :participant"
_STANDING = f"SELECT {STANDING_COLUMNS} FROM (SELECT 1 AS one) q {STANDING_JOIN}"  # noqa: S608 - constants


def standing_from_row(
    values: Sequence[Any], when: Callable[[Any], datetime]
) -> tuple[Participant | None, bool]:
    """The participant and whether the token was revoked, from STANDING_COLUMNS as read."""
    pid, kind, org_code, name, status, scopes, number, valid_until, revoked_licence, revoked = (
        values
    )
    if pid is None:
        return None, bool(revoked)
    licence = None
    if number is not None and valid_until is not None:
        licence = Licence(number, when(valid_until), bool(revoked_licence))
    participant = Participant(
        id=pid,
        kind=ParticipantKind(kind),
        org_code=org_code,
        name=name,
        status=ParticipantStatus(status),
        scopes=frozenset(scopes.split()),
        licence=licence,
    )
    return participant, bool(revoked)


class StandingReader:
    """The interceptor's one query per call, for the calls that have no transaction of their
    own to fold it into."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._dialect = DIALECTS[db.dialect]
        self._sql = self._dialect.sql(_STANDING)

    def read(self, standing: Standing) -> tuple[Participant | None, bool]:
        row = self._db.read_driver(
            self._sql, {"participant": standing.participant_id, "jti": standing.jti}
        )
        assert row is not None  # the one-row derived table always answers
        return standing_from_row(row, self._dialect.when)
