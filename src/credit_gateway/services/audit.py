"""The audit log as the gateway runs it: the log key, integration, and what callers may read.

The log's Ed25519 key and the entries' MAC key are derived from the master key. Every replica
holds the same keys, no extra file is kept, and the database never holds either. Renaming the
label would make a new log, so the key is not rotated in place; a new origin is the way to a new
key (C2SP tlog-checkpoint: one origin, one key).

Every method here is blocking (one transaction): the server runs them on its database threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import records, tlog
from credit_gateway.adapters.storage.db import Database
from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.notes import ED25519, Note, NoteSignature, Signer, Verifier
from credit_gateway.domain.audit import MAC_LABEL, OPERATOR, decision_entry
from credit_gateway.domain.evidence import MAX_ENTRIES, Bundle, ProvenEntry
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import FailedPrecondition, InvalidArgument, NotFound

LOG_KEY_LABEL = "credit-gateway audit log key v1"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    note: bytes
    origin: str
    size: int
    root: bytes
    log_key: str  # the verifier key (vkey) to compare with the published one


def log_signer(master: MasterKey, origin: str) -> Signer:
    """The log's key: what signs its checkpoints, and whose vkey the center publishes."""
    seed = master.derive(LOG_KEY_LABEL)
    return Signer(origin, ED25519, Ed25519PrivateKey.from_private_bytes(seed))


@dataclass(frozen=True, slots=True)
class Evidence:
    bundle: Bundle
    size: int  # the checkpoint's
    pruned: int  # the subject's entries past retention, left out: their bodies are gone


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
        self.signer = log_signer(master, origin)
        self.mac_key = master.derive(MAC_LABEL)

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier

    def integrate(self) -> tlog.Integrated | None:
        """One batch, planned in a read transaction and written in a short write one; None when
        nothing was waiting, or another replica's integrator got there first (next time)."""
        with self.db.transaction(write=False) as session:
            planned = tlog.plan(session, self.signer, self.mac_key, self.batch)
        if planned is None:
            return None
        with self.db.transaction() as session:
            return tlog.apply(session, planned, self.clock())

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
        """The proof for the entry at ``leaf_index`` or with leaf hash ``leaf`` (one of them)."""
        if (leaf_index is None) == (leaf is None):
            raise InvalidArgument.field(
                "leaf", "give a leaf index or a leaf hash", reason="MISSING_FIELD"
            )
        if leaf is not None:
            with self.db.transaction(write=False) as session:
                leaf_index = tlog.leaf_index_of(session, leaf)
        assert leaf_index is not None  # one of the two, checked above
        return tlog.inclusion(tlog.driver_read(self.db), leaf_index, size)

    def consistency(self, old_size: int, new_size: int) -> tuple[int, list[bytes]]:
        return tlog.consistency(tlog.driver_read(self.db), old_size, new_size)

    def entries(self, start: int, end: int) -> list[tlog.StoredEntry]:
        with self.db.transaction(write=False) as session:
            return tlog.entries(session, start, end)

    def verify(self) -> list[tlog.Inconsistency]:
        with self.db.transaction(write=False) as session:
            return tlog.verify_log(session, self.verifier)

    def prune(self, before: datetime) -> int:
        """Prunes bodies before ``before``; the prune itself is on record, in its transaction."""
        now = self.clock()
        with self.db.transaction() as session:
            pruned = tlog.prune(session, before, now, self.retention)
            entry = decision_entry(
                at=now, caller=OPERATOR, method="audit.prune", outcome="PRUNED",
                items=(canonical_timestamp(before, "before"), str(pruned)),
            )  # fmt: skip
            audit_store.append(session, self.mac_key, entry)
        return pruned

    def latest_note(self) -> Note:
        return Note.parse(self.checkpoint().note)

    def integrate_all(self) -> tuple[int, int]:
        """Batches until nothing waits: (entries integrated, rows quarantined)."""
        added = quarantined = 0
        while (done := self.integrate()) is not None:
            added, quarantined = added + done.added, quarantined + len(done.quarantined)
        return added, quarantined

    def check(self) -> list[tlog.Inconsistency]:
        """`verify`, and the waiting rows the integrator will quarantine: all a check can name
        without integrating anything."""
        with self.db.transaction(write=False) as session:
            found = tlog.verify_log(session, self.verifier)
            return found + tlog.unsealed(session, self.mac_key)

    def summary(self) -> tlog.Summary:
        with self.db.transaction(write=False) as session:
            return tlog.summary(session)

    def subject_id(self, subject_lookup: str) -> str:
        """The subject's id by its lookup key (the keyed hash of its code), as the entries
        name it."""
        with self.db.transaction(write=False) as session:
            subject = records.find_subject(session, subject_lookup)
        if subject is None:
            raise NotFound("no subject of that code is on record", reason="SUBJECT_NOT_FOUND")
        return subject.id

    def evidence(self, subject_id: str, witness_keys: Sequence[str] = ()) -> Evidence:
        """The subject's integrated entries, each with its inclusion proof at the latest
        checkpoint, in a bundle with that checkpoint as stored (its cosignatures with it)."""
        with self.db.transaction(write=False) as session:
            row = tlog.latest_checkpoint(session)
            size, note = int(row.size), Note.parse(bytes(row.note))
            stored = tlog.subject_entries(session, subject_id, size, MAX_ENTRIES + 1)
            kept = [(e.leaf_index, e.body) for e in stored if e.body is not None]
            if len(stored) > MAX_ENTRIES:
                raise FailedPrecondition(
                    f"the subject has more than {MAX_ENTRIES} entries, more than a bundle holds",
                    reason="EVIDENCE_TOO_LARGE",
                )
            proofs = tlog.inclusions(session, [index for index, _ in kept], size)
        entries = tuple(
            ProvenEntry(index, body, tuple(proof))
            for (index, body), proof in zip(kept, proofs, strict=True)
        )
        bundle = Bundle(note, self.verifier.vkey(), tuple(witness_keys), entries)
        return Evidence(bundle, size, len(stored) - len(kept))
