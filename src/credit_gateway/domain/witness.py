"""A witness's decision (C2SP tlog-witness, add-checkpoint), as a pure function.

A log sends ``old <size>``, the consistency proof from that size, a blank line and its new
checkpoint. The witness cosigns only if:

* the checkpoint is signed by a key it trusts for that origin;
* ``old`` is the size it last cosigned for the origin;
* the proof shows the new tree extends the old one.

Refusals carry the HTTP status the spec assigns. Storing the new checkpoint must happen
atomically with the check of ``old``: that is the caller's transaction (a compare-and-set on the
stored size). Otherwise two concurrent requests could roll the witness's view back.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

from credit_gateway.crypto.notes import Checkpoint, Note, NoteError, Verifier, open_checkpoint
from credit_gateway.domain.merkle import ProofError, verify_consistency
from credit_gateway.errors import DomainError

MAX_PROOF_LINES = 63
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


class WitnessRefusal(DomainError):
    """The witness does not cosign; ``status`` is the tlog-witness HTTP status."""

    default_reason = "WITNESS_REFUSED"

    def __init__(self, status: int, reason: str, message: str, latest_size: int | None = None):
        super().__init__(message, reason=reason)
        self.status = status
        self.latest_size = latest_size  # with 409: the size the witness last cosigned


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    note: Note

    def encode(self) -> bytes:
        proof = "".join(base64.b64encode(p).decode() + "\n" for p in self.proof)
        return f"old {self.old_size}\n{proof}\n".encode() + self.note.encode()

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        head, sep, checkpoint = body.partition(b"\n\n")
        lines = head.decode("ascii", "replace").split("\n")
        old = _OLD.fullmatch(lines[0])
        if not sep or old is None or len(lines) - 1 > MAX_PROOF_LINES:
            raise WitnessRefusal(
                400, "WITNESS_BAD_REQUEST", "an old size line, proof lines, a blank line, a note"
            )
        try:
            proof = tuple(base64.b64decode(line, validate=True) for line in lines[1:])
            note = Note.parse(checkpoint)
        except (binascii.Error, NoteError) as exc:
            raise WitnessRefusal(400, "WITNESS_BAD_REQUEST", f"malformed request: {exc}") from exc
        return cls(int(old.group(1)), proof, note)


@dataclass(frozen=True, slots=True)
class Latest:
    """What the witness last cosigned for one log."""

    size: int
    root: bytes


def decide(
    request: AddCheckpoint, latest: Latest | None, log_keys: Mapping[str, Verifier]
) -> Checkpoint:
    """The checkpoint to store and cosign, or WitnessRefusal with its status."""
    origin = request.note.text.split("\n", 1)[0]
    key = log_keys.get(origin)
    if key is None:
        raise WitnessRefusal(404, "WITNESS_UNKNOWN_LOG", f"no log {origin!r} is known here")
    try:
        checkpoint = open_checkpoint(request.note, key)
    except NoteError as exc:
        raise WitnessRefusal(403, "WITNESS_BAD_SIGNATURE", exc.message) from exc
    if request.old_size > checkpoint.size:
        raise WitnessRefusal(400, "WITNESS_BAD_REQUEST", "the old size exceeds the checkpoint's")
    known = latest.size if latest else 0
    if request.old_size != known:
        raise WitnessRefusal(
            409, "WITNESS_CONFLICT", f"the last size cosigned is {known}", latest_size=known
        )
    if latest is None or request.old_size == 0:
        if request.proof:
            raise WitnessRefusal(422, "WITNESS_PROOF_INVALID", "no proof from the empty tree")
        return checkpoint
    if request.old_size == checkpoint.size:
        if request.proof or latest.root != checkpoint.root:
            raise WitnessRefusal(
                409, "WITNESS_CONFLICT", "another root for the size last cosigned", known
            )
        return checkpoint
    try:
        verify_consistency(
            latest.size, checkpoint.size, latest.root, checkpoint.root, request.proof
        )
    except ProofError as exc:
        raise WitnessRefusal(422, "WITNESS_PROOF_INVALID", exc.message) from exc
    return checkpoint
