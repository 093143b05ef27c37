"""The audit log as the gateway runs it: the log key, integration, and what callers may read.

The log's Ed25519 key and the entries' MAC key are derived from the master key. Every replica
holds the same keys, no extra file is kept, and the database never holds either. Renaming the
label would make a new log, so the key is not rotated in place; a new origin is the way to a new
key (C2SP tlog-checkpoint: one origin, one key).

Every method here is blocking (one transaction): the server runs them on its database threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit_gateway.adapters.storage import tlog
from credit_gateway.adapters.storage.db import Database
from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.notes import ED25519, Note, NoteSignature, Signer, Verifier
from credit_gateway.domain.audit import MAC_LABEL

LOG_KEY_LABEL = "credit-gateway audit log key v1"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    note: bytes
    origin: str
    size: int
    root: bytes
    log_key: str  # the verifier key (vkey) to compare with the published one


class AuditLog:
    def __init__(
        self,
        db: Database,
        master: MasterKey,
        origin: str,
        clock: Callable[[], datetime],
        *,
        batch: int = 10_000,
        retention: timedelta = timedelta(days=3 * 365),
    ) -> None:
        self.db = db
        self.clock = clock
        self.batch = batch
        self.retention = retention
        seed = master.derive(LOG_KEY_LABEL)
        self.signer = Signer(origin, ED25519, Ed25519PrivateKey.from_private_bytes(seed))
        self.mac_key = master.derive(MAC_LABEL)

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier

    def integrate(self) -> tlog.Integrated | None:
        """One batch; None when nothing was waiting."""
        with self.db.transaction() as session:
            return tlog.integrate(session, self.signer, self.mac_key, self.clock(), self.batch)

    def add_cosignatures(self, size: int, signatures: list[NoteSignature]) -> None:
        with self.db.transaction() as session:
            tlog.add_cosignatures(session, size, signatures)

    def checkpoint(self, size: int = 0) -> SignedCheckpoint:
        """The checkpoint of ``size`` (0: the latest), with every cosignature it has."""
        with self.db.transaction(write=False) as session:
            row = tlog.checkpoint_at(session, size)
            note = bytes(row.note)
        return SignedCheckpoint(note, self.signer.name, int(row.size), bytes(row.root),
                                self.verifier.vkey())  # fmt: skip

    def inclusion(self, leaf_index: int | None, leaf: bytes | None, size: int) -> tlog.Inclusion:
        with self.db.transaction(write=False) as session:
            index = leaf_index if leaf is None else tlog.leaf_index_of(session, leaf)
            return tlog.inclusion(session, index or 0, size)

    def consistency(self, old_size: int, new_size: int) -> tuple[int, list[bytes]]:
        with self.db.transaction(write=False) as session:
            return tlog.consistency(session, old_size, new_size)

    def entries(self, start: int, end: int) -> list[tlog.StoredEntry]:
        with self.db.transaction(write=False) as session:
            return tlog.entries(session, start, end)

    def verify(self) -> list[tlog.Inconsistency]:
        with self.db.transaction(write=False) as session:
            return tlog.verify_log(session, self.verifier)

    def prune(self, before: datetime) -> int:
        with self.db.transaction() as session:
            return tlog.prune(session, before, self.clock(), self.retention)

    def latest_note(self) -> Note:
        return Note.parse(self.checkpoint().note)
