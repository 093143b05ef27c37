"""Witnesses (C2SP tlog-witness, tlog-cosignature), both ways.

As a witness of peers' logs (`Witness`): add-checkpoint's decision is domain/witness.decide; here
it runs inside one transaction that holds the log's stored row locked, so the check of ``old``
and the store of the new checkpoint are one compare-and-set and two concurrent requests can never
roll the witness back (storage/witness_store.py). The cosignature is made only once that
transaction has committed (the spec: persist before responding).

As a log asking witnesses (`Cosigning`): after a batch is integrated the newest checkpoint is
offered to each configured witness. Each witness has a task of its own that sends the newest
checkpoint offered, with a consistency proof from the size that witness last cosigned, so a slow
or dead witness holds up neither integration, nor calls, nor the other witnesses; what failed is
logged and tried again with the next checkpoint. The size a witness last cosigned is kept in
memory only: after a restart the first request says ``old 0`` or a stale size, the witness's 409
names its size, and the one retry carries the right proof (tlog-witness allows exactly this).

The witness key is an Ed25519 cosignature key (type 0x04) derived from the master key, like the
log key (services/audit.py): every replica holds it, no file is kept, the database never sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit_gateway.adapters.storage import witness_store
from credit_gateway.adapters.storage.db import Database
from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.notes import (
    COSIGNATURE_V1,
    MAX_SIGNATURES,
    Note,
    NoteError,
    NoteSignature,
    Signer,
    Verifier,
    cosign,
    cosignature_time,
)
from credit_gateway.domain.witness import AddCheckpoint, WitnessRefusal, decide

log = logging.getLogger(__name__)

WITNESS_KEY_LABEL = "credit-gateway witness key v1"
SIZE_CONTENT_TYPE = "text/x.tlog.size"  # a 409's body: the size last cosigned
# A witness's answer is signature lines: MAX_SIGNATURES of them fit with room to spare.
MAX_ANSWER_BYTES = 64 * 1024


def witness_signer(master: MasterKey, name: str) -> Signer:
    """Our witness key, named ``name``. Renaming keeps the key but changes its id, so logs that
    trust the old vkey ignore the new cosignatures: a rename is announced like a new key."""
    seed = master.derive(WITNESS_KEY_LABEL)
    return Signer(name, COSIGNATURE_V1, Ed25519PrivateKey.from_private_bytes(seed))


def witness_vkey(master_key_file: Path, name: str) -> str:
    """The verifier key a peer configures to trust our cosignatures (for the operator's CLI:
    ``witness_vkey(settings.master_key_file, settings.effective_witness_name)``)."""
    return witness_signer(MasterKey.load(master_key_file), name).verifier.vkey()


# --------------------------------------------------------------------------- as a witness


class Witness:
    """The add-checkpoint endpoint's service: blocking (one transaction), for a database thread."""

    def __init__(
        self,
        db: Database,
        signer: Signer,
        log_keys: Mapping[str, Verifier],
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.signer = signer
        self.log_keys = dict(log_keys)
        self.clock = clock

    def prepare(self) -> None:
        """A stored row for every log witnessed, so that requests lock rows that exist."""
        with self.db.transaction() as session:
            witness_store.ensure(session, sorted(self.log_keys), self.clock())

    def add_checkpoint(self, body: bytes) -> bytes:
        """The cosignature line for the request's checkpoint, once it is stored as the latest;
        WitnessRefusal (its status the spec's) otherwise, with nothing stored."""
        request = AddCheckpoint.parse(body)
        origin = request.note.text.partition("\n")[0]
        if origin not in self.log_keys:
            decide(request, None, self.log_keys)  # raises the 404 before any row is touched
        now = self.clock()
        try:
            with self.db.transaction() as session:
                latest = witness_store.locked(session, origin, now)
                checkpoint = decide(request, latest, self.log_keys)
                witness_store.advance(session, checkpoint, now)
        except WitnessRefusal as refusal:
            if refusal.status in (409, 422):
                # Possibly the log's misbehaviour (a fork): kept where an operator will see it.
                log.warning(
                    "witness refused a checkpoint",
                    extra={"fields": {"origin": origin, "old": request.old_size,
                                      "status": refusal.status, "reason": refusal.reason,
                                      "note": request.note.encode().decode()}},
                )  # fmt: skip
            raise
        return cosign(request.note, self.signer, int(now.timestamp())).line().encode()


# --------------------------------------------------------------------------- as a log


@dataclass(frozen=True, slots=True)
class Answer:
    """A witness's HTTP answer, as the transport read it (the body bounded)."""

    status: int
    content_type: str
    body: bytes


Post = Callable[[bytes], Awaitable[Answer]]  # POSTs an add-checkpoint body to one witness
Proof = Callable[[int, int], Awaitable[list[bytes]]]  # consistency proof, old size to new
Store = Callable[[int, list[NoteSignature]], Awaitable[None]]  # cosignatures of a checkpoint


def verified_cosignatures(note: Note, answer: bytes, witness: Verifier) -> list[NoteSignature]:
    """The lines of ``answer`` that are valid cosignatures of ``note`` by ``witness``; lines of
    other keys, bad lines and malformed ones are left out (tlog-witness: ignore unknown keys)."""
    try:
        lines = answer.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return []
    good: list[NoteSignature] = []
    for line in lines[:MAX_SIGNATURES]:
        try:
            alone = Note.parse((note.text + "\n" + line + "\n").encode())
            cosignature_time(alone, witness)
        except NoteError:
            continue
        good.extend(alone.signatures)
    return good


def conflict_size(answer: Answer) -> int | None:
    """The size a 409 names, or None if the body is not a text/x.tlog.size line."""
    text = answer.body.decode("ascii", "replace")
    if answer.content_type != SIZE_CONTENT_TYPE or not text.endswith("\n"):
        return None
    size = text[:-1]
    return int(size) if size.isdigit() and (size == "0" or size[0] != "0") else None


class WitnessClient:
    """One configured witness, as our log asks it to cosign."""

    def __init__(self, url: str, verifier: Verifier, post: Post, proof: Proof, store: Store):
        self.url = url
        self.verifier = verifier
        self.post = post
        self.proof = proof
        self.store = store
        self.cosigned = 0  # the size it last cosigned, as far as we know

    async def submit(self, size: int, note: Note) -> int:
        """Ask for a cosignature of our checkpoint of ``size``; the number of valid cosignatures
        stored. Every failure is logged, never raised: the next checkpoint tries again."""
        try:
            return await self._submit(size, note)
        except Exception as error:  # down, slow, refused, or our database: next time
            log.warning(
                "witness did not cosign",
                extra={"fields": {"witness": self.url, "size": size, "error": str(error)}},
            )
            return 0

    async def _submit(self, size: int, note: Note) -> int:
        for retry in (False, True):
            old = self.cosigned
            proof = await self.proof(old, size) if 0 < old < size else []
            answer = await self.post(AddCheckpoint(old, tuple(proof), note).encode())
            if answer.status == 200:
                signatures = verified_cosignatures(note, answer.body, self.verifier)
                if not signatures:
                    raise WitnessError(f"no valid cosignature by {self.verifier.name} in 200")
                await self.store(size, signatures)
                self.cosigned = size
                return len(signatures)
            known = conflict_size(answer) if answer.status == 409 else None
            if known is None or retry or known == old:
                # known == old: the same size with another root, or a witness that contradicts
                # itself; either way no retry can help.
                raise WitnessError(f"HTTP {answer.status}: {_snippet(answer.body)}")
            self.cosigned = known
            if known > size:  # it has cosigned a larger tree of ours (another replica's batch)
                return 0
        raise AssertionError("unreachable")  # pragma: no cover


class WitnessError(Exception):
    """A witness's answer we cannot use; logged, never shown to a caller."""


def _snippet(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").strip()


class Cosigning:
    """Each witness's sender task: it sends the newest checkpoint offered, one at a time."""

    def __init__(self, clients: Sequence[WitnessClient]) -> None:
        self.clients = list(clients)
        self._offered: list[tuple[int, Note] | None] = [None] * len(self.clients)
        self._wake = [asyncio.Event() for _ in self.clients]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._send(i)) for i in range(len(self.clients))]

    def offer(self, size: int, note: Note) -> None:
        """A new checkpoint for every witness; one still waiting to be sent is replaced."""
        for i in range(len(self.clients)):
            self._offered[i] = (size, note)
            self._wake[i].set()

    async def _send(self, i: int) -> None:
        client = self.clients[i]
        while True:
            await self._wake[i].wait()
            self._wake[i].clear()
            offered, self._offered[i] = self._offered[i], None
            if offered is not None and offered[0] > client.cosigned:
                await client.submit(*offered)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
