"""storage/witness_store.py on every backend: rows made ahead once whoever makes them, a row
missing at request time made under the lock, and a refusal inside the transaction stores
nothing (services/witness.Witness on the real database, without HTTP)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from credit_gateway.adapters.storage import witness_store
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import WitnessedLogRow
from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.notes import ED25519, Checkpoint, Signer, sign_checkpoint
from credit_gateway.domain.witness import AddCheckpoint, Latest, WitnessRefusal
from credit_gateway.services.witness import Witness, witness_signer

NOW = datetime(2026, 12, 1, tzinfo=UTC)
LOG = Signer("log.test/audit", ED25519, Ed25519PrivateKey.generate())


def witness(db: Database) -> Witness:
    signer = witness_signer(MasterKey(bytes(32)), "w.test/w")
    return Witness(db, signer, {LOG.name: LOG.verifier}, lambda: NOW)


def body(old: int, size: int) -> bytes:
    digest = hashlib.sha256(b"%d" % size).digest()
    return AddCheckpoint(old, (), sign_checkpoint(Checkpoint(LOG.name, size, digest), LOG)).encode()


def stored(db: Database) -> tuple[int, Latest | None]:
    with db.transaction(write=False) as session:
        rows = session.scalar(select(func.count()).select_from(WitnessedLogRow))
        return int(rows or 0), witness_store.latest(session, LOG.name)


def test_rows_are_made_ahead_once(db: Database) -> None:
    w = witness(db)
    w.prepare()
    w.prepare()  # a second replica starting
    assert stored(db) == (1, None)


def test_a_row_missing_at_request_time_is_made_under_the_lock(db: Database) -> None:
    w = witness(db)
    assert w.add_checkpoint(body(0, 3)).startswith("\u2014 w.test/w ".encode())
    assert stored(db) == (1, Latest(3, hashlib.sha256(b"3").digest()))


@pytest.mark.parametrize(("old", "status"), [(2, 409), (0, 409)])
def test_a_refusal_stores_nothing(db: Database, old: int, status: int) -> None:
    w = witness(db)
    w.add_checkpoint(body(0, 3))
    before = stored(db)
    with pytest.raises(WitnessRefusal) as refused:
        w.add_checkpoint(body(old, 5))
    assert (refused.value.status, refused.value.latest_size) == (status, 3)
    assert stored(db) == before


def test_an_unknown_log_touches_no_row(db: Database) -> None:
    other = Signer("elsewhere.test/audit", ED25519, LOG.private_key)
    note = sign_checkpoint(Checkpoint(other.name, 1, bytes(32)), other)
    with pytest.raises(WitnessRefusal) as refused:
        witness(db).add_checkpoint(AddCheckpoint(0, (), note).encode())
    assert refused.value.status == 404
    assert stored(db) == (0, None)
