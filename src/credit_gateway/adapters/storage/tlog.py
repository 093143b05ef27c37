"""The audit log's Merkle tree in storage: integration, checkpoints, proofs, checks, retention.

The release transaction appends an entry (`audit_entries`) with its RFC 9162 leaf hash. The
integrator then gives committed entries their leaf indexes, in batches: it reads a batch and
computes its nodes and signed checkpoint without a lock (`plan`), then writes them (`apply`)
holding the one `audit_tree` row locked (SELECT ... FOR UPDATE; on SQLite the write lock) if
the tree is still where the plan found it, so one integrator works at a time whichever replica
runs it and the writer's lock is held only for the writes. It writes the complete-subtree
nodes the batch creates (`audit_nodes`; none is ever changed), the leaf indexes and a
checkpoint signed with the log key (`audit_checkpoints`) in one transaction. A proof reads
O(log n) stored nodes in one query.

`verify_log` recomputes the tree from the stored entries and checks it against every signed
checkpoint, so a row changed, deleted, inserted or reordered behind the gateway's back is named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import (
    AuditCheckpointRow,
    AuditEntryRow,
    AuditNodeRow,
    AuditTreeRow,
    core,
)
from credit_gateway.crypto.notes import (
    Checkpoint,
    Note,
    NoteError,
    NoteSignature,
    Signer,
    Verifier,
    open_checkpoint,
    sign_checkpoint,
)
from credit_gateway.domain.audit import leaf_hash, mac_matches
from credit_gateway.domain.merkle import (
    EMPTY_ROOT,
    LeafHashes,
    Nodes,
    appended_nodes,
    consistency_proof,
    inclusion_proof,
    root,
)
from credit_gateway.errors import FailedPrecondition, InvalidArgument, NotFound

TREE_ROW = 1  # the one row of audit_tree: the integrated size and root
MAX_ENTRIES_PER_READ = 1000
T = TypeVar("T")


# --------------------------------------------------------------------------- stored nodes


class _Wanted:
    """A Nodes that records what is asked for. Which nodes a proof or an append reads depends on
    the indexes alone, never on the hashes, so one dry run names them all for one query."""

    def __init__(self) -> None:
        self.keys: set[tuple[int, int]] = set()

    def node(self, level: int, index: int) -> bytes:
        self.keys.add((level, index))
        return EMPTY_ROOT


class _Known:
    def __init__(self, hashes: dict[tuple[int, int], bytes]) -> None:
        self._hashes = hashes

    def node(self, level: int, index: int) -> bytes:
        try:
            return self._hashes[(level, index)]
        except KeyError:
            raise FailedPrecondition(
                f"the log's node ({level}, {index}) is missing", reason="LOG_INCONSISTENT"
            ) from None


Read = Callable[[str], Iterable[Sequence[Any]]]
"""Runs one statement of SQL text (no placeholders: every value in it is our own int) and
returns its rows: a session's, or the driver's own cursor (`driver_read`)."""


def session_read(session: Session) -> Read:
    return lambda sql: session.execute(text(sql))


def driver_read(db: Database) -> Read:
    """On the calling thread's own autocommit connection (Database.read_all_driver): a proof is
    one or two statements, without a session or a transaction around them. Nothing they read
    ever changes (nodes and checkpoints are written once), so they need no common snapshot:
    a checkpoint found has all its nodes."""
    return lambda sql: db.read_all_driver(sql, {})


def with_nodes(
    read: Read,
    compute: Callable[[Nodes], T],
    made: Iterable[tuple[int, int, bytes]] = (),
) -> T:
    """``compute`` over the stored nodes (and ``made``, not yet stored), read in one query."""
    known = {(level, index): value for level, index, value in made}
    wanted = _Wanted()
    compute(wanted)
    missing = wanted.keys - known.keys()
    if missing:
        by_level: dict[int, list[int]] = {}
        for level, index in sorted(missing):
            by_level.setdefault(level, []).append(index)
        # One (level = L AND idx IN (...)) per level, each an index range on the primary key
        # (SQLite's planner scans a row-value IN of pairs whole). The numbers are ours, ints
        # written as literals: one short statement, no expression tree built per proof.
        terms = " OR ".join(
            f"(level = {int(level)} AND idx IN ({','.join(str(int(i)) for i in indexes)}))"
            for level, indexes in by_level.items()
        )
        rows = read(f"SELECT level, idx, hash FROM audit_nodes WHERE {terms}")  # noqa: S608
        known.update({(int(level), int(index)): bytes(value) for level, index, value in rows})
    return compute(_Known(known))


# --------------------------------------------------------------------------- integration


@dataclass(frozen=True, slots=True)
class Integrated:
    size: int
    root: bytes
    note: Note | None  # None when the batch held only quarantined rows
    added: int
    quarantined: tuple[int, ...]  # seqs of rows refused: no valid MAC, or a leaf not their own


@dataclass(frozen=True, slots=True)
class Plan:
    """A batch read and computed, not yet written: what `apply` writes if the tree is still of
    ``size`` then."""

    size: int
    root: bytes  # the tree's root before the batch
    good: tuple[tuple[int, bytes], ...]  # (seq, leaf) in order
    refused: tuple[int, ...]
    made: tuple[tuple[int, int, bytes], ...]  # the nodes the batch creates
    new_root: bytes
    note: Note | None

    @property
    def new_size(self) -> int:
        return self.size + len(self.good)


def plan(session: Session, signer: Signer, mac_key: bytes, batch: int) -> Plan | None:
    """Up to ``batch`` committed, unintegrated entries, checked, with the nodes they make and
    the signed checkpoint; None when there is nothing to integrate. Takes no lock: the CPU work
    of a batch (hashes, MACs, the signature) is done here, outside the writer's lock, which
    on SQLite every release also waits for.

    Each leaf is recomputed from the body, and each body must carry the gateway's MAC (rows older
    than MACs, up to the tree's legacy_seq, excepted): a row that fails either is quarantined,
    never integrated, and kept for `audit verify` to name."""
    tree = session.execute(
        select(AuditTreeRow.size, AuditTreeRow.root, AuditTreeRow.legacy_seq).where(
            AuditTreeRow.id == TREE_ROW
        )
    ).one_or_none()
    size, old_root, legacy = (0, EMPTY_ROOT, 0) if tree is None else tree
    pending = session.execute(
        select(AuditEntryRow.seq, AuditEntryRow.body, AuditEntryRow.leaf_hash, AuditEntryRow.mac)
        .where(AuditEntryRow.leaf_index.is_(None), AuditEntryRow.quarantined.is_(False))
        .order_by(AuditEntryRow.seq)
        .limit(batch)
    ).all()
    if not pending:
        return None
    good: list[tuple[int, bytes]] = []
    refused: list[int] = []
    for seq, body, stored_leaf, mac in pending:
        if _sealed(mac_key, int(legacy), seq, bytes(body), bytes(stored_leaf), mac):
            good.append((seq, bytes(stored_leaf)))
        else:
            refused.append(seq)
    size = int(size)
    if not good:
        return Plan(size, bytes(old_root), (), tuple(refused), (), bytes(old_root), None)
    read = session_read(session)
    leaves = [leaf for _, leaf in good]
    made = with_nodes(read, lambda nodes: appended_nodes(nodes, size, leaves))
    new_size = size + len(leaves)
    new_root = with_nodes(read, lambda nodes: root(nodes, new_size), made)
    note = sign_checkpoint(Checkpoint(signer.name, new_size, new_root), signer)
    return Plan(size, bytes(old_root), tuple(good), tuple(refused), tuple(made), new_root, note)


def apply(session: Session, planned: Plan, now: datetime) -> Integrated | None:
    """Writes ``planned`` under the tree row's lock (SELECT ... FOR UPDATE; on SQLite the write
    lock), so one integrator works at a time whichever replica runs it. None, writing nothing,
    if another integrator extended the tree since the plan was made: plan again."""
    tree = _locked_tree(session, now)
    if int(tree.size) != planned.size or bytes(tree.root) != planned.root:
        return None
    if planned.refused:
        session.execute(
            update(AuditEntryRow)
            .where(AuditEntryRow.seq.in_(planned.refused))
            .values(quarantined=True)
        )
    if planned.note is None:
        return Integrated(planned.size, planned.root, None, 0, planned.refused)
    session.execute(
        core(AuditNodeRow).insert(),
        [{"level": level, "idx": index, "hash": value} for level, index, value in planned.made],
    )
    session.execute(
        update(AuditEntryRow),
        [{"seq": seq, "leaf_index": planned.size + i} for i, (seq, _) in enumerate(planned.good)],
    )
    new_size, new_root = planned.new_size, planned.new_root
    session.add(
        AuditCheckpointRow(size=new_size, root=new_root, note=planned.note.encode(), created_at=now)
    )
    tree.size, tree.root, tree.updated_at = new_size, new_root, now
    return Integrated(new_size, new_root, planned.note, len(planned.good), planned.refused)


def integrate(
    session: Session, signer: Signer, mac_key: bytes, now: datetime, batch: int
) -> Integrated | None:
    """`plan` and `apply` in one transaction (the caller's), the tree locked (or made) first:
    None when nothing waits."""
    _locked_tree(session, now)
    planned = plan(session, signer, mac_key, batch)
    return None if planned is None else apply(session, planned, now)


def _sealed(
    mac_key: bytes, legacy_seq: int, seq: int, body: bytes, stored_leaf: bytes, mac: bytes | None
) -> bool:
    """A row the integrator takes: its body hashes to its leaf and carries the gateway's MAC
    (rows up to the tree's legacy_seq were written before MACs)."""
    if leaf_hash(body) != stored_leaf:
        return False
    return seq <= legacy_seq or mac_matches(mac_key, body, mac)


def _locked_tree(session: Session, now: datetime) -> AuditTreeRow:
    """The tree row, locked for this transaction; made (empty) in a database that has none.
    Two replicas making it at once: one insert fails on the key, and its batch runs next time."""
    query = select(AuditTreeRow).where(AuditTreeRow.id == TREE_ROW).with_for_update()
    tree = session.execute(query).scalar_one_or_none()
    if tree is None:
        tree = AuditTreeRow(id=TREE_ROW, size=0, root=EMPTY_ROOT, updated_at=now, legacy_seq=0)
        session.add(tree)
        session.flush()
    return tree


def add_cosignatures(session: Session, size: int, signatures: Sequence[NoteSignature]) -> None:
    """Append witnesses' cosignatures to the stored checkpoint of ``size`` (once each)."""
    row = session.get(AuditCheckpointRow, size, with_for_update=True)
    if row is None:
        raise NotFound(f"no checkpoint of size {size}", reason="CHECKPOINT_NOT_FOUND")
    note = Note.parse(bytes(row.note))
    have = {(s.name, s.key_id) for s in note.signatures}
    for signature in signatures:
        if (signature.name, signature.key_id) not in have:
            note = note.with_signature(signature)
            have.add((signature.name, signature.key_id))
    row.note = note.encode()


# --------------------------------------------------------------------------- reads


def latest_checkpoint(session: Session) -> AuditCheckpointRow:
    row = session.scalars(
        select(AuditCheckpointRow).order_by(AuditCheckpointRow.size.desc()).limit(1)
    ).first()
    if row is None:
        raise NotFound("the log has no checkpoint yet", reason="CHECKPOINT_NOT_FOUND")
    return row


def checkpoint_at(session: Session, size: int) -> AuditCheckpointRow:
    """The checkpoint of ``size``, or the latest one for 0."""
    if size == 0:
        return latest_checkpoint(session)
    row = session.get(AuditCheckpointRow, size)
    if row is None:
        raise NotFound(f"no checkpoint of size {size}", reason="CHECKPOINT_NOT_FOUND")
    return row


def leaf_index_of(session: Session, leaf: bytes) -> int:
    index = session.scalar(
        select(AuditNodeRow.idx).where(AuditNodeRow.level == 0, AuditNodeRow.hash == leaf)
    )
    if index is None:
        raise NotFound("no integrated entry has that leaf hash", reason="ENTRY_NOT_FOUND")
    return int(index)


@dataclass(frozen=True, slots=True)
class Inclusion:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]


def signed_size(read: Read, size: int) -> int:
    """``size`` if a checkpoint of that size exists, or the latest checkpoint's size for 0."""
    found = list(
        read(
            "SELECT size FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
            if size == 0
            else f"SELECT size FROM audit_checkpoints WHERE size = {int(size)}"  # noqa: S608
        )
    )
    if not found:
        raise NotFound(
            "the log has no checkpoint yet" if size == 0 else f"no checkpoint of size {size}",
            reason="CHECKPOINT_NOT_FOUND",
        )
    return int(found[0][0])


def inclusion(read: Read, leaf_index: int, tree_size: int) -> Inclusion:
    size = signed_size(read, tree_size)
    if not 0 <= leaf_index < size:
        raise InvalidArgument.field(
            "leaf_index", f"not in the tree of {size}", reason="LEAF_OUT_OF_RANGE"
        )
    leaf, proof = with_nodes(
        read,
        lambda nodes: (nodes.node(0, leaf_index), inclusion_proof(nodes, leaf_index, size)),
    )
    return Inclusion(leaf_index, size, leaf, proof)


def consistency(read: Read, old_size: int, new_size: int) -> tuple[int, list[bytes]]:
    new = signed_size(read, new_size)
    if not 0 < old_size <= new:
        raise InvalidArgument.field("old_size", f"between 1 and {new}", reason="SIZE_OUT_OF_RANGE")
    return new, with_nodes(read, lambda nodes: consistency_proof(nodes, old_size, new))


@dataclass(frozen=True, slots=True)
class StoredEntry:
    leaf_index: int
    leaf_hash: bytes
    body: bytes | None  # None once pruned

    @property
    def pruned(self) -> bool:
        return self.body is None


def _stored(session: Session, where: Any, limit: int) -> list[StoredEntry]:
    """Integrated entries in leaf order."""
    rows = session.execute(
        select(
            AuditEntryRow.leaf_index, AuditEntryRow.leaf_hash, AuditEntryRow.body,
            AuditEntryRow.pruned,
        )
        .where(where)
        .order_by(AuditEntryRow.leaf_index)
        .limit(limit)
    )  # fmt: skip
    # leaf_index is selected non-null by every caller's `where`
    return [
        StoredEntry(cast(int, i), bytes(h), None if pruned else bytes(b))
        for i, h, b, pruned in rows
    ]


def entries(session: Session, start: int, end: int) -> list[StoredEntry]:
    if not 0 <= start < end or end - start > MAX_ENTRIES_PER_READ:
        raise InvalidArgument.field(
            "end", f"after start, at most {MAX_ENTRIES_PER_READ} entries", reason="RANGE_INVALID"
        )
    between = (AuditEntryRow.leaf_index >= start) & (AuditEntryRow.leaf_index < end)
    return _stored(session, between, end - start)


# --------------------------------------------------------------------------- checking the log


@dataclass(frozen=True, slots=True)
class Inconsistency:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def verify_log(session: Session, log_key: Verifier, chunk: int = 10_000) -> list[Inconsistency]:
    """Everything that does not hold, in log order: each entry's body hashes to its leaf, leaf
    indexes run 0..n-1 with none missing, every checkpoint is signed by the log key and its root
    is the root of the leaves as the stored entries give them."""
    found: list[Inconsistency] = []
    signed: dict[int, bytes] = {}
    for row in session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.size)):
        try:
            checkpoint = open_checkpoint(Note.parse(bytes(row.note)), log_key)
        except NoteError as exc:
            found.append(Inconsistency(f"checkpoint {row.size}", exc.message))
            continue
        if (checkpoint.size, checkpoint.root) != (row.size, bytes(row.root)):
            found.append(Inconsistency(f"checkpoint {row.size}", "its row differs from its note"))
        signed[checkpoint.size] = checkpoint.root
    size = session.scalar(select(AuditTreeRow.size).where(AuditTreeRow.id == TREE_ROW)) or 0
    leaves: list[bytes] = []
    while len(leaves) < size:
        batch = _stored(session, AuditEntryRow.leaf_index >= len(leaves), chunk)
        held = _leaf_nodes(session, batch)
        for entry in batch or [StoredEntry(size, b"", None)]:
            while len(leaves) < min(entry.leaf_index, size):
                found.append(Inconsistency(f"leaf {len(leaves)}", "no entry has this index"))
                leaves.append(EMPTY_ROOT)
            if entry.leaf_index >= size:
                break
            if entry.body is not None and leaf_hash(entry.body) != entry.leaf_hash:
                found.append(
                    Inconsistency(f"leaf {entry.leaf_index}", "the entry does not hash to its leaf")
                )
            elif held.get(entry.leaf_index, entry.leaf_hash) != entry.leaf_hash:
                # The tree's own leaf node was written once, when the entry was integrated: an
                # entry moved to another index, or replaced with its leaf rewritten, differs.
                found.append(
                    Inconsistency(
                        f"leaf {entry.leaf_index}", "not the entry the tree holds at this index"
                    )
                )
            leaves.append(entry.leaf_hash)
        if not batch:
            break
    for seq in session.scalars(
        select(AuditEntryRow.seq).where(AuditEntryRow.quarantined.is_(True))
    ):
        found.append(Inconsistency(f"entry seq {seq}", "quarantined: no valid MAC or leaf"))
    # Against the tree's size as this statement reads it: a replica may have integrated since
    # `size` was read (PostgreSQL's statements each see what has committed), and its leaves
    # commit with its size.
    now_size = func.coalesce(
        select(AuditTreeRow.size).where(AuditTreeRow.id == TREE_ROW).scalar_subquery(), 0
    )
    extra = session.scalar(
        select(AuditEntryRow.leaf_index).where(AuditEntryRow.leaf_index >= now_size).limit(1)
    )
    if extra is not None:
        found.append(Inconsistency(f"leaf {extra}", "beyond the tree's size"))
    recomputed = LeafHashes(leaves)
    for at, signed_root in sorted(signed.items()):
        if at > size:
            found.append(Inconsistency(f"checkpoint {at}", "beyond the tree's size"))
        elif root(recomputed, at) != signed_root:
            found.append(Inconsistency(f"checkpoint {at}", "the entries do not make its root"))
    return found


def _leaf_nodes(session: Session, batch: Sequence[StoredEntry]) -> dict[int, bytes]:
    """The tree's leaf nodes (level 0) over the indexes of ``batch``, by index."""
    if not batch:
        return {}
    rows = session.execute(
        select(AuditNodeRow.idx, AuditNodeRow.hash).where(
            AuditNodeRow.level == 0,
            AuditNodeRow.idx.between(batch[0].leaf_index, batch[-1].leaf_index),
        )
    )
    return {int(index): bytes(value) for index, value in rows}


def unsealed(session: Session, mac_key: bytes) -> list[Inconsistency]:
    """Entries waiting for the integrator that it will quarantine: no valid MAC, or a body that
    does not hash to its leaf. `verify_log` cannot see them (they are in no tree yet), and a
    check integrates nothing, so this names them."""
    legacy = session.scalar(select(AuditTreeRow.legacy_seq).where(AuditTreeRow.id == TREE_ROW))
    rows = session.execute(
        select(AuditEntryRow.seq, AuditEntryRow.body, AuditEntryRow.leaf_hash, AuditEntryRow.mac)
        .where(AuditEntryRow.leaf_index.is_(None), AuditEntryRow.quarantined.is_(False))
        .order_by(AuditEntryRow.seq)
    )
    return [
        Inconsistency(f"entry seq {seq}", "waiting to be integrated without a valid MAC or leaf")
        for seq, body, leaf, mac in rows
        if not _sealed(mac_key, int(legacy or 0), seq, bytes(body), bytes(leaf), mac)
    ]


@dataclass(frozen=True, slots=True)
class Summary:
    size: int  # entries integrated
    checkpoints: int
    waiting: int  # committed, not yet integrated (quarantined ones excepted)
    pruned: int
    quarantined: int


def summary(session: Session) -> Summary:
    size = session.scalar(select(AuditTreeRow.size).where(AuditTreeRow.id == TREE_ROW)) or 0
    checkpoints = session.scalar(select(func.count()).select_from(AuditCheckpointRow)) or 0

    def entries_where(where: Any) -> int:
        return int(
            session.scalar(select(func.count()).select_from(AuditEntryRow).where(where)) or 0
        )

    waiting = entries_where(
        AuditEntryRow.leaf_index.is_(None) & AuditEntryRow.quarantined.is_(False)
    )
    pruned = entries_where(AuditEntryRow.pruned.is_(True))
    quarantined = entries_where(AuditEntryRow.quarantined.is_(True))
    return Summary(int(size), int(checkpoints), waiting, pruned, quarantined)


# --------------------------------------------------------------------------- evidence


def subject_entries(
    session: Session, subject_id: str, tree_size: int, limit: int
) -> list[StoredEntry]:
    """The subject's entries in the tree of ``tree_size``, in leaf order, at most ``limit``."""
    return _stored(
        session,
        (AuditEntryRow.subject_id == subject_id) & (AuditEntryRow.leaf_index < tree_size),
        limit,
    )


def inclusions(
    session: Session, indexes: Sequence[int], tree_size: int, chunk: int = 500
) -> list[list[bytes]]:
    """The inclusion proofs of ``indexes`` in the tree of ``tree_size`` (a checkpoint's size),
    one query for the nodes of each ``chunk`` of them."""

    def proofs_of(part: Sequence[int]) -> Callable[[Nodes], list[list[bytes]]]:
        return lambda nodes: [inclusion_proof(nodes, i, tree_size) for i in part]

    proofs: list[list[bytes]] = []
    for start in range(0, len(indexes), chunk):
        proofs += with_nodes(session_read(session), proofs_of(indexes[start : start + chunk]))
    return proofs


# --------------------------------------------------------------------------- retention


def prune(session: Session, before: datetime, now: datetime, retention: timedelta) -> int:
    """Remove the bodies of integrated entries older than ``before``, keeping their hashes so
    old proofs still verify. ``before`` may not be later than ``now - retention``."""
    if before > now - retention:
        raise FailedPrecondition(
            f"entries are kept {retention.days} days (Art 19); "
            f"nothing after {(now - retention).date().isoformat()} can be pruned",
            reason="RETENTION_NOT_REACHED",
        )
    result = session.execute(
        update(AuditEntryRow)
        .where(
            AuditEntryRow.at < before,
            AuditEntryRow.leaf_index.is_not(None),
            AuditEntryRow.pruned.is_(False),
        )
        .values(body=b"", pruned=True)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
