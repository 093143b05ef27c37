"""The transactional outbox: a record to deliver to a peer platform is an outbox row written in
the record's own transaction (`enqueue`), so a record is never stored without its delivery,
nor a delivery queued for a record that was not stored.

A record is queued for a peer when the peer's platform holds an active exchange agreement, in
force now, that names the push operation and covers the record's item. Whether the record
leaves is decided again at delivery, by policy.decide: by then it may be withheld. A record a
platform pushed to us is not queued (records.store_submission passes only records submitted
here): relaying it would send it back where it came from, and round again.

An entry's life: pending -> delivered (the peer acknowledged it: ACCEPTED or DUPLICATE), or
withheld (the policy refused it at delivery: never sent), or dead (the peer rejected it, or
it failed outbox_max_attempts times; `outbox retry` makes it pending again). Delivered rows
are kept until `outbox purge`.

The delivery of a partition is one worker's at a time across replicas: the one holding its
outbox_leases row (`take_lease`), renewed while it works.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import bulk
from credit_gateway.adapters.storage.agreements import parse_document
from credit_gateway.adapters.storage.leases import take_row
from credit_gateway.adapters.storage.peers import get_peer, record_action
from credit_gateway.adapters.storage.tables import (
    AgreementRow,
    OutboxLeaseRow,
    OutboxRow,
    PeerRow,
    RecordRow,
    core,
)
from credit_gateway.domain.agreements import AgreementStatus, Operation
from credit_gateway.domain.catalog import CatalogItem
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.policy import AgreementState, not_in_force
from credit_gateway.domain.records import WrittenNotice
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import FailedPrecondition, InvalidArgument, NotFound

PARTITIONS = 4  # delivery workers: one per partition, across every replica
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
WITHHELD = "withheld"  # refused by the policy at delivery: never sent
STATES = (PENDING, DELIVERED, DEAD, WITHHELD)
MAX_ERROR = 500  # last_error's width
_CHUNK = 500  # ids in one IN (...)


def partition_of(subject_id: str) -> int:
    """A subject's records share a partition, so they are delivered in the order stored."""
    return zlib.crc32(subject_id.encode()) % PARTITIONS


def enqueue(
    session: Session, records: Sequence[tuple[str, str, CatalogItem]], now: datetime
) -> None:
    """Queues each (record id, subject id, item) for every peer whose agreement shares it."""
    if not records:
        return
    rows = session.execute(
        select(PeerRow.name, AgreementRow.document, AgreementRow.status).join(
            AgreementRow, AgreementRow.counterparty_id == PeerRow.participant_id
        )
    ).all()
    if not rows:
        return
    states = [
        (peer, AgreementState(parse_document(document), AgreementStatus(status)))
        for peer, document, status in rows
    ]
    # In force for push as policy.not_in_force has it: the one definition.
    sharing = [
        (peer, state.agreement)
        for peer, state in states
        if not_in_force(state, Operation.PUSH, now) is None
    ]
    entries = [
        (new_id("obx"), peer, record_id, partition_of(subject_id), PENDING, 0, now, None, now, None)
        for record_id, subject_id, item in records
        for peer in dict.fromkeys(p for p, agreement in sharing if agreement.covers_item(item))
    ]
    # In the submission's write, beside its records: bound as they are (storage/bulk.py).
    bulk.insert_many(session, core(OutboxRow), _NEW_ENTRY_COLUMNS, entries)


_NEW_ENTRY_COLUMNS = (  # a new entry's, in the order enqueue gives them
    "id", "peer", "record_id", "partition", "state", "attempts", "next_at", "last_error",
    "created_at", "delivered_at",
)  # fmt: skip


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


# --------------------------------------------------------------------------- the worker's


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    peer: str
    record_id: str
    partition: int
    state: str
    attempts: int
    next_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


_ENTRY_COLUMNS = (
    OutboxRow.id, OutboxRow.peer, OutboxRow.record_id, OutboxRow.partition, OutboxRow.state,
    OutboxRow.attempts, OutboxRow.next_at, OutboxRow.last_error, OutboxRow.created_at,
    OutboxRow.delivered_at,
)  # fmt: skip


def _entries(session: Session, query: object) -> list[Entry]:
    return [Entry(*row) for row in session.execute(query)]  # type: ignore[call-overload]


def due_partitions(session: Session, now: datetime) -> list[int]:
    """The partitions with a pending entry due (a read on the due index: what an idle worker
    asks each time, taking no lease)."""
    query = (
        select(OutboxRow.partition)
        .where(OutboxRow.state == PENDING, OutboxRow.next_at <= now)
        .distinct()
    )
    return sorted(int(p) for p in session.scalars(query))


def take_lease(
    session: Session, partition: int, holder: str, now: datetime, until: datetime
) -> bool:
    """Takes or renews the partition's lease until `until`: True if `holder` holds it now (the
    one conditional UPDATE of storage/leases.take_row, as the runner leases)."""
    return take_row(session, OutboxLeaseRow, "partition", partition, holder, now, until)


def release_leases(session: Session, holder: str, now: datetime) -> None:
    """Gives back the holder's leases (a worker that stops): another may take them at once."""
    session.execute(update(OutboxLeaseRow).where(OutboxLeaseRow.holder == holder).values(until=now))


def claim(
    session: Session, partition: int, limit: int, now: datetime, until: datetime
) -> list[Entry]:
    """Up to `limit` due pending entries of the partition, oldest first (a subject's records in
    the order stored), in flight until `until`: not due to anyone before then, unless settled.

    The caller holds the partition's lease, but a lease can run out in the middle of a slow
    send, and a replica that then takes it must not release the same entries again. The rows
    are read FOR UPDATE: a concurrent claim waits on them, and then (PostgreSQL re-checks the
    condition on the committed row, InnoDB's locking read sees the latest; SQLite has one
    writer) finds them no longer due."""
    query = (
        select(*_ENTRY_COLUMNS)
        .where(OutboxRow.state == PENDING, OutboxRow.partition == partition)
        .where(OutboxRow.next_at <= now)
        .order_by(OutboxRow.created_at, OutboxRow.id)
        .limit(limit)
        .with_for_update()
    )
    entries = _entries(session, query)
    _set_state(session, [e.id for e in entries], next_at=until)
    return entries


def _set_state(session: Session, ids: Sequence[str], **values: object) -> None:
    for chunk in _chunks(ids):
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(chunk), OutboxRow.state == PENDING)
            .values(**values)
        )


def mark_withheld(session: Session, reasons: dict[str, str]) -> None:
    """Entries the policy refused at delivery, each with its reason: never sent."""
    by_reason: dict[str, list[str]] = {}
    for entry_id, reason in reasons.items():
        by_reason.setdefault(reason, []).append(entry_id)
    for reason, ids in by_reason.items():
        _set_state(session, ids, state=WITHHELD, last_error=reason[:MAX_ERROR])


def mark_delivered(session: Session, ids: Sequence[str], now: datetime) -> None:
    _set_state(session, ids, state=DELIVERED, delivered_at=now, last_error=None)


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed entry's next state: pending again at `next_at`, or dead (next_at None)."""

    entry_id: str
    attempts: int
    next_at: datetime | None
    error: str


_FAILED = (
    update(core(OutboxRow))
    .where(core(OutboxRow).c.id == bindparam("entry"), core(OutboxRow).c.state == PENDING)
    .values(
        attempts=bindparam("attempts"),
        state=bindparam("new_state"),
        next_at=bindparam("due"),
        last_error=bindparam("error"),
    )
)


def mark_failed(session: Session, failures: Sequence[Failure], now: datetime) -> None:
    if not failures:
        return
    session.execute(
        _FAILED,
        [
            {
                "entry": f.entry_id,
                "attempts": f.attempts,
                "new_state": PENDING if f.next_at is not None else DEAD,
                "due": f.next_at or now,
                "error": f.error[:MAX_ERROR],
            }
            for f in failures
        ],
    )


# --------------------------------------------------------------------------- what is sent


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the provider signed of a stored record, beyond what the feed reads."""

    provider_record_id: str
    digest: str
    signature: bytes
    signer_kid: str
    notice: WrittenNotice | None


def provenance(session: Session, record_ids: Iterable[str]) -> dict[str, Provenance]:
    ids = sorted(set(record_ids))
    found: dict[str, Provenance] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(
                RecordRow.id, RecordRow.provider_record_id, RecordRow.digest,
                RecordRow.signature, RecordRow.signer_kid, RecordRow.notice_reference,
                RecordRow.notice_delivered_at,
            ).where(RecordRow.id.in_(chunk))
        )  # fmt: skip
        for rid, provider_record_id, digest, signature, kid, number, delivered in rows:
            notice = None
            if number is not None and delivered is not None:
                notice = WrittenNotice(number, delivered)
            found[rid] = Provenance(provider_record_id, digest, bytes(signature), kid, notice)
    return found


# --------------------------------------------------------------------------- the operator's


def _known_peer(session: Session, peer: str | None) -> None:
    if peer is not None and get_peer(session, peer) is None:
        raise NotFound(f"no peer {peer}", reason="PEER_NOT_FOUND")


def list_entries(session: Session, state: str | None, peer: str | None, limit: int) -> list[Entry]:
    """Entries, newest first, of a state and a peer if given (an unknown one is refused)."""
    if state is not None and state not in STATES:
        raise InvalidArgument.field("state", f"one of {', '.join(STATES)}")
    _known_peer(session, peer)
    query = select(*_ENTRY_COLUMNS)
    if state is not None:
        query = query.where(OutboxRow.state == state)
    if peer is not None:
        query = query.where(OutboxRow.peer == peer)
    query = query.order_by(OutboxRow.created_at.desc(), OutboxRow.id.desc()).limit(limit)
    return _entries(session, query)


def retry_dead(
    session: Session, mac_key: bytes, now: datetime, peer: str | None, ids: Sequence[str]
) -> int:
    """Dead entries pending again, due now, attempts from zero: those named (each must be a
    dead entry, of `peer` if given; else nothing changes), or every dead one (of `peer`)."""
    _known_peer(session, peer)
    query = select(OutboxRow.id).where(OutboxRow.state == DEAD)
    if peer is not None:
        query = query.where(OutboxRow.peer == peer)
    if ids:
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        for chunk in _chunks(wanted):
            found.update(session.scalars(query.where(OutboxRow.id.in_(chunk))))
        missing = [i for i in wanted if i not in found]
        if missing:
            whose = f" of peer {peer}" if peer is not None else ""
            raise FailedPrecondition(
                f"not a dead entry{whose}: {', '.join(missing[:5])}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                + "; nothing was retried",
                reason="ENTRY_NOT_DEAD",
            )
        chosen = wanted
    else:
        chosen = list(session.scalars(query))
    for chunk in _chunks(chosen):
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(chunk), OutboxRow.state == DEAD)
            .values(state=PENDING, attempts=0, next_at=now, last_error=None)
        )
    record_action(session, mac_key, "outbox.retry", "RETRIED", now, (peer or "*", str(len(chosen))))
    return len(chosen)


def purge_delivered(session: Session, mac_key: bytes, before: datetime, now: datetime) -> int:
    """Deletes delivered entries delivered before `before` (not later than now); no other
    state is ever purged: a pending, withheld or dead entry is work or evidence."""
    if before > now:
        raise InvalidArgument.field(
            "delivered_before", "lies in the future: only what was delivered can be purged"
        )
    result = session.execute(
        delete(OutboxRow).where(OutboxRow.state == DELIVERED, OutboxRow.delivered_at < before)
    )
    purged = int(result.rowcount)  # type: ignore[attr-defined]
    when = canonical_timestamp(before, "before")
    record_action(session, mac_key, "outbox.purge", "PURGED", now, (when, str(purged)))
    return purged


def counts(session: Session) -> dict[str, int]:
    """How many entries are in each state (for `outbox list`'s summary and the tests)."""
    rows = session.execute(select(OutboxRow.state, func.count()).group_by(OutboxRow.state))
    return {state: int(n) for state, n in rows}
