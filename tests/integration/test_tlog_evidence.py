"""The storage reads behind `audit export` and `audit verify`, on every database: a subject's
entries and their proofs read in chunks, the waiting rows a check names, the log's counts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from credit_gateway.adapters.storage import tlog
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import AuditEntryRow, AuditTreeRow
from credit_gateway.crypto.notes import ED25519, Signer
from credit_gateway.domain.audit import AuditEntry, entry_mac, leaf_hash
from credit_gateway.domain.merkle import EMPTY_ROOT, verify_inclusion

SIGNER = Signer("gateway.test/audit", ED25519, Ed25519PrivateKey.generate())
MAC_KEY = bytes(range(32))
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
IDS = itertools.count()


def append(db: Database, subjects: list[str], *, mac: bool = True) -> None:
    """One entry per subject named, as the release path writes them."""
    with db.transaction() as session:
        for subject in subjects:
            entry = AuditEntry(
                f"aud-{next(IDS):06d}", NOW, "zx-credit", "QueryOpen", subject, "LOAN_APPROVAL", (),
                "RELEASED", (),
            )  # fmt: skip
            body = entry.body()
            session.add(
                AuditEntryRow(
                    id=entry.id, at=NOW, caller="zx-credit", method="QueryOpen",
                    subject_id=subject, consent_id=None, agreement_id=None, outcome="RELEASED",
                    body=body, leaf_hash=leaf_hash(body),
                    mac=entry_mac(MAC_KEY, body) if mac else None,
                )
            )  # fmt: skip


def last_seq(session: Session) -> int:
    return int(session.scalar(select(func.max(AuditEntryRow.seq))) or 0)


def integrate(db: Database) -> None:
    with db.transaction() as session:
        tlog.integrate(session, SIGNER, MAC_KEY, NOW, 1000)


@pytest.mark.parametrize("size", [1, 2, 7, 33])
def test_a_subjects_entries_and_their_proofs_in_chunks(db: Database, size: int) -> None:
    append(db, [f"sub-{n % 3}" for n in range(size)])
    integrate(db)
    append(db, ["sub-0"])  # waiting: in no tree yet, so in no bundle
    with db.transaction(write=False) as session:
        root = bytes(tlog.latest_checkpoint(session).root)
        mine = tlog.subject_entries(session, "sub-0", size, 1000)
        assert [e.leaf_index for e in mine] == list(range(0, size, 3))
        indexes = list(range(size))
        proofs = tlog.inclusions(session, indexes, size, chunk=3)  # chunk boundaries crossed
        assert proofs == [
            tlog.inclusion(tlog.session_read(session), i, size).hashes for i in indexes
        ]
        leaves = {e.leaf_index: e.leaf_hash for e in tlog.entries(session, 0, size)}
        for index, proof in zip(indexes, proofs, strict=True):
            verify_inclusion(leaves[index], index, size, proof, root)
        assert len(tlog.subject_entries(session, "sub-0", size, 1)) == 1


def test_a_check_names_waiting_rows_without_a_mac_but_not_legacy_ones(db: Database) -> None:
    append(db, ["sub-0"], mac=False)  # written before MACs: the migration's legacy_seq covers it
    with db.transaction() as session:  # the fixture's empty database has no tree row
        session.merge(
            AuditTreeRow(
                id=tlog.TREE_ROW, size=0, root=EMPTY_ROOT, updated_at=NOW,
                legacy_seq=last_seq(session),
            )
        )  # fmt: skip
    append(db, ["sub-0", "sub-1"])
    append(db, ["sub-2"], mac=False)  # a DBA's insert
    with db.transaction(write=False) as session:
        assert [str(i) for i in tlog.unsealed(session, MAC_KEY)] == [
            f"entry seq {last_seq(session)}: waiting to be integrated without a valid MAC or leaf"
        ]
        assert tlog.summary(session) == tlog.Summary(0, 0, 4, 0, 0)
    integrate(db)
    with db.transaction(write=False) as session:
        assert tlog.unsealed(session, MAC_KEY) == []  # quarantined now: verify_log names it
        assert tlog.summary(session) == tlog.Summary(3, 1, 0, 0, 1)


def test_a_check_while_the_integrator_runs_names_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica integrates between the check's reads (on PostgreSQL each statement sees what
    has committed by then): what it adds is not "beyond the tree's size"."""
    append(db, ["sub-0"] * 5)
    integrate(db)
    read = tlog._stored
    raced: list[bool] = []

    def and_a_replica_integrates(*args: object, **kwargs: object) -> list[tlog.StoredEntry]:
        if not raced:
            raced.append(True)
            append(db, ["sub-1"] * 3)
            integrate(db)
        return read(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tlog, "_stored", and_a_replica_integrates)
    with db.transaction(write=False) as session:
        assert tlog.verify_log(session, SIGNER.verifier) == []
    assert raced
