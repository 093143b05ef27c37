"""The audit log's tree in storage, on every database: integration in batches, signed
checkpoints, proofs that verify against them, rows refused, tampering named, retention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select

from credit_gateway.adapters.storage import tlog
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import AuditEntryRow, AuditNodeRow, AuditTreeRow
from credit_gateway.crypto.notes import ED25519, Note, Signer, open_checkpoint
from credit_gateway.domain.audit import AuditEntry, entry_mac, leaf_hash
from credit_gateway.domain.merkle import verify_consistency, verify_inclusion
from credit_gateway.errors import FailedPrecondition

ORIGIN = "gateway.test/audit"
SIGNER = Signer(ORIGIN, ED25519, Ed25519PrivateKey.generate())
MAC_KEY = bytes(range(32))
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def append(
    db: Database, count: int, *, start: int = 0, at: datetime = NOW, mac: bool = True
) -> None:
    """Entries as the release path writes them (a body, its leaf hash, its MAC)."""
    rows = []
    for n in range(start, start + count):
        body = AuditEntry(
            f"aud-{n:06d}", at, "zx-credit", "QueryOpen", f"sub-{n % 7}", "LOAN_APPROVAL",
            ("REG.ENTERPRISE",), "RELEASED", (),
        ).body()  # fmt: skip
        rows.append(
            AuditEntryRow(
                id=f"aud-{n:06d}", at=at, caller="zx-credit", method="QueryOpen",
                subject_id=f"sub-{n % 7}", consent_id=None, agreement_id=None,
                outcome="RELEASED", body=body, leaf_hash=leaf_hash(body),
                mac=entry_mac(MAC_KEY, body) if mac else None,
            )
        )  # fmt: skip
    with db.transaction() as session:
        session.add_all(rows)


def integrate(db: Database, batch: int = 1000) -> tlog.Integrated | None:
    with db.transaction() as session:
        return tlog.integrate(session, SIGNER, MAC_KEY, NOW, batch)


def test_batches_make_signed_checkpoints_every_proof_verifies_against(db: Database) -> None:
    sizes = []
    for count in (1, 6, 33, 100):
        append(db, count, start=sum(sizes[-1:]) if sizes else 0)
        done = integrate(db)
        assert done is not None
        assert done.note is not None
        sizes.append(done.size)
    assert sizes == [1, 7, 40, 140]
    assert integrate(db) is None  # nothing left
    with db.transaction(write=False) as session:
        latest = tlog.latest_checkpoint(session)
        checkpoint = open_checkpoint(Note.parse(bytes(latest.note)), SIGNER.verifier)
        assert (checkpoint.size, checkpoint.root) == (140, bytes(latest.root))
        for index in (0, 1, 39, 77, 139):
            proof = tlog.inclusion(tlog.session_read(session), index, 0)
            verify_inclusion(proof.leaf_hash, index, 140, proof.hashes, checkpoint.root)
        stored = tlog.entries(session, 0, 140)
        assert [e.leaf_index for e in stored] == list(range(140))
        assert all(leaf_hash(e.body or b"") == e.leaf_hash for e in stored)
        assert tlog.leaf_index_of(session, stored[77].leaf_hash) == 77
        for old in sizes[:-1]:
            old_root = bytes(tlog.checkpoint_at(session, old).root)
            new, proof_hashes = tlog.consistency(tlog.session_read(session), old, 0)
            verify_consistency(old, new, old_root, checkpoint.root, proof_hashes)
        assert tlog.verify_log(session, SIGNER.verifier) == []


def test_a_row_written_behind_the_gateways_back_is_quarantined_and_named(db: Database) -> None:
    append(db, 3)
    append(db, 1, start=3, mac=False)  # a DBA's insert: no MAC
    append(db, 2, start=4)
    done = integrate(db)
    assert done is not None
    assert (done.size, done.added, len(done.quarantined)) == (5, 5, 1)
    assert integrate(db) is None  # a quarantined row is never picked up again
    with db.transaction(write=False) as session:
        found = [str(i) for i in tlog.verify_log(session, SIGNER.verifier)]
    assert len(found) == 1
    assert "quarantined" in found[0]


@pytest.mark.parametrize("tamper", ["change", "delete", "swap", "leaf"])
def test_tampering_with_a_stored_entry_is_named(db: Database, tamper: str) -> None:
    append(db, 20)
    integrate(db)
    with db.transaction() as session:
        if tamper == "change":
            row = session.scalars(select(AuditEntryRow).where(AuditEntryRow.leaf_index == 7)).one()
            row.body = bytes(row.body).replace(b"RELEASED", b"REFUSED")
        elif tamper == "delete":
            session.execute(delete(AuditEntryRow).where(AuditEntryRow.leaf_index == 7))
        elif tamper == "swap":
            rows = session.scalars(
                select(AuditEntryRow).where(AuditEntryRow.leaf_index.in_([7, 8]))
            ).all()
            swapped = {row.seq: 15 - int(row.leaf_index or 0) for row in rows}  # 7 <-> 8
            for row in rows:
                row.leaf_index = None  # free both indexes first (they are unique)
            session.flush()
            for row in rows:
                row.leaf_index = swapped[row.seq]
        else:  # the leaf hash rewritten to match a changed body
            row = session.scalars(select(AuditEntryRow).where(AuditEntryRow.leaf_index == 7)).one()
            row.body = bytes(row.body).replace(b"RELEASED", b"REFUSED")
            row.leaf_hash = leaf_hash(bytes(row.body))
    with db.transaction(write=False) as session:
        found = [str(i) for i in tlog.verify_log(session, SIGNER.verifier)]
    assert found, "tampering went unnoticed"
    assert found[0].startswith(("leaf 7", "checkpoint 20"))


def test_a_checkpoint_not_signed_by_the_log_key_is_named(db: Database) -> None:
    append(db, 4)
    integrate(db)
    other = Signer(ORIGIN, ED25519, Ed25519PrivateKey.generate())
    with db.transaction(write=False) as session:
        found = [str(i) for i in tlog.verify_log(session, other.verifier)]
    assert found == ["checkpoint 4: the note is not signed by gateway.test/audit"]


def test_two_integrators_at_once_make_one_tree(db: Database) -> None:
    assert integrate(db) is None  # the tree row, as a migrated database has it
    append(db, 400)
    results: list[tlog.Integrated | None] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(10):
                results.append(integrate(db, batch=37))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sizes = sorted(r.size for r in results if r is not None)
    assert sizes == sorted(set(sizes))  # no size signed twice
    assert sizes[-1] == 400
    with db.transaction(write=False) as session:
        indexes = session.scalars(select(AuditEntryRow.leaf_index)).all()
        assert sorted(i for i in indexes if i is not None) == list(range(400))
        assert tlog.verify_log(session, SIGNER.verifier) == []


def test_retention_prunes_bodies_but_proofs_still_verify(db: Database) -> None:
    old = NOW - timedelta(days=3 * 365 + 10)
    append(db, 5, at=old)
    append(db, 5, start=5)
    integrate(db)
    retention = timedelta(days=3 * 365)
    with db.transaction() as session:
        with pytest.raises(FailedPrecondition) as refused:
            tlog.prune(session, NOW - timedelta(days=30), NOW, retention)
        assert refused.value.reason == "RETENTION_NOT_REACHED"
    with db.transaction() as session:
        assert tlog.prune(session, NOW - retention, NOW, retention) == 5
    with db.transaction(write=False) as session:
        stored = tlog.entries(session, 0, 10)
        assert [e.pruned for e in stored] == [True] * 5 + [False] * 5
        latest = tlog.latest_checkpoint(session)
        proof = tlog.inclusion(tlog.session_read(session), 2, 0)
        verify_inclusion(proof.leaf_hash, 2, 10, proof.hashes, bytes(latest.root))
        assert tlog.verify_log(session, SIGNER.verifier) == []


def test_a_missing_node_is_an_error_not_a_wrong_proof(db: Database) -> None:
    append(db, 8)
    integrate(db)
    with db.transaction() as session:
        session.execute(delete(AuditNodeRow).where(AuditNodeRow.level == 1, AuditNodeRow.idx == 1))
    with db.transaction(write=False) as session, pytest.raises(FailedPrecondition) as refused:
        tlog.inclusion(tlog.session_read(session), 0, 0)
    assert refused.value.reason == "LOG_INCONSISTENT"


def test_the_tree_row_is_made_in_a_database_without_one(db: Database) -> None:
    with db.transaction() as session:
        session.execute(delete(AuditTreeRow))
    append(db, 2)
    done = integrate(db)
    assert done is not None
    assert done.size == 2
