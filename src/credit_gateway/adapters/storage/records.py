"""Subjects (looked up by keyed hash, code sealed) and records (non-open payloads sealed), and
the submission store: a submission's records written in one transaction (store_submission)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import bulk, feed, outbox
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import ACTIVE, RecordRow, SubjectRow, core
from credit_gateway.crypto.envelope import Envelope
from credit_gateway.domain.catalog import CatalogItem
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.records import WrittenNotice, record_aad, subject_aad
from credit_gateway.domain.release import Subject as NamedSubject
from credit_gateway.errors import Conflict


@dataclass(frozen=True, slots=True)
class Subject:
    id: str
    kind: SubjectKind
    public_jwk: str | None


_SUBJECTS = core(SubjectRow)
_SUBJECT_BY_LOOKUP = select(_SUBJECTS.c.id, _SUBJECTS.c.kind, _SUBJECTS.c.public_jwk).where(
    _SUBJECTS.c.lookup == bindparam("lookup")
)
_SUBJECT_BY_LOOKUP_CURRENT = _SUBJECT_BY_LOOKUP.with_for_update(read=True)


def find_subject(session: Session, lookup: str, *, current: bool = False) -> Subject | None:
    """`current`: the latest committed row, with a share lock (see existing_digest)."""
    statement = _SUBJECT_BY_LOOKUP_CURRENT if current else _SUBJECT_BY_LOOKUP
    row = session.connection().execute(statement, {"lookup": lookup}).first()
    return None if row is None else Subject(row.id, SubjectKind(row.kind), row.public_jwk)


def subject_code(session: Session, envelope: Envelope, subject_id: str) -> str:
    return subject_codes(session, envelope, [subject_id])[subject_id]


def subject_codes(
    session: Session, envelope: Envelope, subject_ids: Iterable[str]
) -> dict[str, str]:
    """The subjects' codes, opened, in one read."""
    ids = sorted(set(subject_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(
            SubjectRow.id, SubjectRow.lookup, SubjectRow.code_key_id, SubjectRow.code_sealed
        ).where(SubjectRow.id.in_(ids))
    )
    return {
        sid: envelope.open(key_id, bytes(sealed), subject_aad(lookup)).decode()
        for sid, lookup, key_id, sealed in rows
    }


def ensure_subject(
    session: Session, envelope: Envelope, lookup: str, code: str, kind: SubjectKind, now: datetime
) -> Subject:
    found = find_subject(session, lookup)
    if found is not None:
        return found
    subject = NamedSubject(kind, code, lookup)
    subject_id = new_id("sbj")
    if add_subject(session, envelope, subject_id, subject, now):
        return Subject(subject_id, kind, None)
    found = find_subject(session, lookup, current=True)  # made by a concurrent call: as committed
    assert found is not None
    return found


def add_subject(
    session: Session, envelope: Envelope, subject_id: str, subject: NamedSubject, now: datetime
) -> bool:
    """Adds the subject, its code sealed (bound to its lookup key); False if a concurrent
    transaction added one of that lookup key first (this transaction goes on without it)."""
    row = _subject_row(envelope, subject_id, subject, now)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def _subject_row(
    envelope: Envelope, subject_id: str, subject: NamedSubject, now: datetime
) -> SubjectRow:
    """A new subject's row: its code sealed, bound to its lookup key."""
    key_id, sealed = envelope.seal(subject.code.encode(), subject_aad(subject.lookup))
    return SubjectRow(
        id=subject_id,
        lookup=subject.lookup,
        kind=subject.kind.value,
        code_key_id=key_id,
        code_sealed=sealed,
        public_jwk=None,
        created_at=now,
    )


def set_subject_key(session: Session, subject_id: str, public_jwk: str | None) -> None:
    row = session.get(SubjectRow, subject_id)
    assert row is not None
    row.public_jwk = public_jwk


@dataclass(frozen=True, slots=True)
class NewRecord:
    provider_id: str
    provider_record_id: str
    item_code: str
    subject_id: str
    occurred_at: datetime
    digest: str
    payload: bytes
    signature: bytes
    signer_kid: str
    notice: WrittenNotice | None  # Art 22, stored as its number and delivery time
    seal: bool
    origin: Origin | None = None  # a platform's push: what it vouched for
    disclosure_until: datetime | None = None  # its item's period for its payload
    replaces: str | None = None  # the record it corrects (Art 29: an objection upheld)


@dataclass(frozen=True, slots=True)
class Origin:
    """A pushed record's origin (RecordRow's origin columns): the providing unit at the origin,
    the keys its signature verifies under, and the origin platform's signature over them."""

    provider_code: str
    provider_jwks: str
    signature: bytes
    key_id: str
    provider_record_id: str  # the providing unit's own id, which its signature covers


def existing_digest(
    session: Session, provider_id: str, provider_record_id: str, *, current: bool = False
) -> tuple[str, str] | None:
    """The stored record's id and digest. `current` reads the latest committed row with a
    share lock (InnoDB's REPEATABLE READ snapshot would not show a concurrent insert)."""
    query = select(RecordRow.id, RecordRow.digest).where(
        RecordRow.provider_id == provider_id, RecordRow.provider_record_id == provider_record_id
    )
    if current:
        query = query.with_for_update(read=True)
    row = session.execute(query).first()
    return None if row is None else (row[0], row[1])


# A new record's columns, in the order of `record_row`'s values.
RECORD_COLUMNS = (
    "id", "provider_id", "provider_record_id", "item_code", "subject_id", "occurred_at",
    "submitted_at", "digest", "payload_key_id", "payload", "signature", "signer_kid",
    "notice_reference", "notice_delivered_at", "state", "labels", "disclosure_until",
    "objection_filed_at", "archived_at", "archive_reason", "replaces", "origin_provider_code",
    "provider_jwks", "origin_signature", "origin_kid", "origin_provider_record_id",
)  # fmt: skip


def record_row(
    envelope: Envelope, record: NewRecord, now: datetime, subject_id: str | None = None
) -> tuple[Any, ...]:
    """A new record's row, RECORD_COLUMNS' values, with a new id and its payload sealed if it
    is to be: for one ORM insert (`insert_record`) or many at once (`_store_at_once`, which
    gives the subject's id found at the write)."""
    record_id = new_id("rec")
    key_id: str | None = None
    payload = record.payload
    if record.seal:
        key_id, payload = envelope.seal(payload, record_aad(record_id))
    notice, origin = record.notice, record.origin
    return (
        record_id, record.provider_id, record.provider_record_id, record.item_code,
        record.subject_id if subject_id is None else subject_id, record.occurred_at, now,
        record.digest, key_id, payload, record.signature, record.signer_kid,
        None if notice is None else notice.number,
        None if notice is None else notice.delivered_at,
        ACTIVE, "", record.disclosure_until, None, None, None, record.replaces,
        *(_NO_ORIGIN if origin is None else (
            origin.provider_code, origin.provider_jwks, origin.signature, origin.key_id,
            origin.provider_record_id,
        )),
    )  # fmt: skip


_NO_ORIGIN = (None,) * 5


def insert_record(
    session: Session, envelope: Envelope, record: NewRecord, now: datetime, *, careful: bool = False
) -> str | None:
    """Adds the record; `careful` flushes it in a savepoint and answers None if a concurrent
    insert of the same provider id won (the caller then reads what was stored)."""
    row = RecordRow(**dict(zip(RECORD_COLUMNS, record_row(envelope, record, now), strict=True)))
    record_id = row.id
    if not careful:
        session.add(row)
        return record_id
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return record_id


# --- the submission store ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submitted:
    """A checked record to store, for the subject it names by code: `record` as it is stored but
    for its `subject_id` (left empty), which the store sets to that subject's, added if new."""

    subject: NamedSubject
    record: NewRecord
    item: CatalogItem  # what the outbox asks of the peers' agreements


@dataclass(frozen=True, slots=True)
class Stored:
    """Where a submitted record is: stored now (`new`), or before, under the same provider id,
    with the digest of what was stored then; or nowhere, because its subject is held as
    another kind (`stored_kind`, the kind held; record_id and digest empty)."""

    record_id: str
    digest: str
    new: bool
    stored_kind: SubjectKind | None = None
    subject_id: str = ""  # of a record stored now


class _Abandoned(Exception):
    """Raised to roll the submission back."""


def store_submission(
    db: Database,
    envelope: Envelope,
    batch: Sequence[Submitted],
    now: datetime,
    abandoned: Callable[[], bool],
    *,
    careful: bool,
) -> list[Stored] | None:
    """The batch's records in ONE transaction, each where it is stored (in order); None, rolled
    back, if `abandoned()` says so just before the commit. Not `careful`, a record or subject
    that a concurrent submission stored meanwhile fails the whole: Conflict, nothing stored.
    `careful` reads the latest committed rows and inserts each in a savepoint, so it finds what
    the other stored (slower: for the retry after a Conflict)."""
    try:
        with db.transaction() as session:
            try:
                if careful:
                    stored = _store(session, envelope, batch, now, careful=True)
                else:
                    stored = _store_at_once(session, envelope, batch, now)
                session.flush()
            except IntegrityError as exc:
                raise Conflict("a concurrent submission stored one of these first") from exc
            new = [(b, s) for b, s in zip(batch, stored, strict=True) if s.new]
            # Only records submitted here leave for peers: a pushed one came from a platform,
            # which the national one (the usual peer) holds already.
            outbox.enqueue(
                session,
                [(s.record_id, s.subject_id, b.item) for b, s in new if b.record.origin is None],
                now,
            )
            # Last, so that the feed's counter row is locked for as short a time as can be.
            feed.append(
                session,
                [feed.Change(s.record_id, b.item.code, s.subject_id, "new") for b, s in new],
                now,
            )
            if abandoned():
                raise _Abandoned  # leaving the block rolls every record back
    except _Abandoned:
        return None
    return stored


READ_CHUNK = 500  # keys in one IN (...) read


def _store_at_once(
    session: Session, envelope: Envelope, batch: Sequence[Submitted], now: datetime
) -> list[Stored]:
    """`_store` for the first attempt: the records stored already read in a few IN queries for
    the whole batch, not one query each, and the new ones added without a flush between them,
    so they go out as batched inserts. Subjects are found and added as `_store` does, once a
    lookup key. A concurrent submission that stores one of the records first fails the insert:
    Conflict, and the careful `_store` runs."""
    keys = list(dict.fromkeys((b.record.provider_id, b.record.provider_record_id) for b in batch))
    known = _existing_digests(session, keys)
    subjects: dict[str, Subject | None] = {}
    stored: list[Stored] = []
    rows: list[tuple[Any, ...]] = []  # inserted at the end, in one executemany
    with session.no_autoflush:
        for item in batch:
            named, record = item.subject, item.record
            if named.lookup not in subjects:
                subjects[named.lookup] = find_subject(session, named.lookup)
            held = subjects[named.lookup]
            if held is not None and held.kind is not named.kind:
                stored.append(Stored("", "", new=False, stored_kind=held.kind))  # as _store
                continue
            key = (record.provider_id, record.provider_record_id)
            if key in known:
                stored.append(Stored(*known[key], new=False))
                continue
            if held is None:
                held = ensure_subject(session, envelope, named.lookup, named.code, named.kind, now)
                subjects[named.lookup] = held
                if held.kind is not named.kind:  # added meanwhile by a concurrent submission
                    stored.append(Stored("", "", new=False, stored_kind=held.kind))
                    continue
            row = record_row(envelope, record, now, held.id)
            rows.append(row)
            known[key] = (row[0], record.digest)
            stored.append(Stored(row[0], record.digest, new=True, subject_id=held.id))
    bulk.insert_many(session, core(RecordRow), RECORD_COLUMNS, rows)
    return stored


def _existing_digests(
    session: Session, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, str]]:
    found: dict[tuple[str, str], tuple[str, str]] = {}
    by_provider: dict[str, list[str]] = {}
    for provider, record_id in keys:
        by_provider.setdefault(provider, []).append(record_id)
    for provider, ids in by_provider.items():
        for start in range(0, len(ids), READ_CHUNK):
            rows = session.execute(
                select(RecordRow.provider_record_id, RecordRow.id, RecordRow.digest).where(
                    RecordRow.provider_id == provider,
                    RecordRow.provider_record_id.in_(ids[start : start + READ_CHUNK]),
                )
            )
            found.update({(provider, rid): (rec, digest) for rid, rec, digest in rows})
    return found


def _store(
    session: Session,
    envelope: Envelope,
    batch: Sequence[Submitted],
    now: datetime,
    *,
    careful: bool,
) -> list[Stored]:
    seen: dict[tuple[str, str], tuple[str, str]] = {}  # stored by this batch: (id, digest)
    subjects: dict[str, Subject | None] = {}  # by lookup, as this batch found or added them
    stored: list[Stored] = []
    for item in batch:
        named, record = item.subject, item.record
        if named.lookup not in subjects:
            subjects[named.lookup] = find_subject(session, named.lookup, current=careful)
        held = subjects[named.lookup]
        if held is not None and held.kind is not named.kind:
            # A code valid as two kinds names one subject: it keeps the kind it was first held
            # as, and a record that says otherwise is refused rather than mixed in.
            stored.append(Stored("", "", new=False, stored_kind=held.kind))
            continue
        key = (record.provider_id, record.provider_record_id)
        known = seen.get(key) or existing_digest(session, *key, current=careful)
        if known is None:
            subject = held or ensure_subject(
                session, envelope, named.lookup, named.code, named.kind, now
            )
            subjects[named.lookup] = subject
            if subject.kind is not named.kind:  # added meanwhile by a concurrent submission
                stored.append(Stored("", "", new=False, stored_kind=subject.kind))
                continue
            record = replace(record, subject_id=subject.id)
            record_id = insert_record(session, envelope, record, now, careful=careful)
            if record_id is not None:
                seen[key] = (record_id, record.digest)
                stored.append(Stored(record_id, record.digest, new=True, subject_id=subject.id))
                continue
            known = existing_digest(session, *key, current=True)
            assert known is not None  # the insert lost to exactly this row
        stored.append(Stored(*known, new=False))
    return stored
