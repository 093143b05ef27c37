"""Evidence bundles: a subject's audit entries with what proves them, checked offline.

A bundle is one JSON document. It holds:

* a checkpoint of the log, as a signed note with the witnesses' cosignatures;
* the subject's entries, each with its leaf index and an RFC 9162 inclusion proof at that
  checkpoint's size;
* the log's and the witnesses' verifier keys, for convenience only.

Whoever checks it needs no database and no gateway, only the keys they trust. A key the bundle
carries proves nothing by itself, since whoever wrote the bundle chose it. So
:func:`verify_bundle` says when it had to use the bundle's own log key, and the checker compares
that key with the one the center publishes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from credit_gateway.crypto.notes import (
    Checkpoint,
    Note,
    NoteError,
    Verifier,
    cosignature_time,
    open_checkpoint,
)
from credit_gateway.domain.audit import leaf_hash
from credit_gateway.domain.merkle import ProofError, verify_inclusion
from credit_gateway.errors import DomainError

FORMAT = "credit-gateway/evidence/v1"
MAX_ENTRIES = 100_000


class EvidenceError(DomainError):
    default_reason = "EVIDENCE_INVALID"


@dataclass(frozen=True, slots=True)
class ProvenEntry:
    leaf_index: int
    body: bytes
    proof: tuple[bytes, ...]

    def document(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Bundle:
    checkpoint: Note
    log_key: str
    witness_keys: tuple[str, ...]
    entries: tuple[ProvenEntry, ...]

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT,
            "log_key": self.log_key,
            "witness_keys": list(self.witness_keys),
            "checkpoint": self.checkpoint.encode().decode(),
            "entries": [
                {
                    "leaf_index": e.leaf_index,
                    "entry": base64.b64encode(e.body).decode(),
                    "proof": [base64.b64encode(p).decode() for p in e.proof],
                }
                for e in self.entries
            ],
        }
        return json.dumps(doc, indent=2, ensure_ascii=False).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Bundle:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise EvidenceError(f"not an evidence bundle ({FORMAT})")
            raw_entries = doc["entries"]
            if not isinstance(raw_entries, list) or len(raw_entries) > MAX_ENTRIES:
                raise EvidenceError(f"a bundle holds a list of at most {MAX_ENTRIES} entries")
            entries = tuple(
                ProvenEntry(
                    _index(e["leaf_index"]),
                    base64.b64decode(e["entry"], validate=True),
                    tuple(base64.b64decode(p, validate=True) for p in e["proof"]),
                )
                for e in raw_entries
            )
            witnesses = doc.get("witness_keys", [])
            if not isinstance(witnesses, list) or not all(isinstance(w, str) for w in witnesses):
                raise EvidenceError("witness_keys is a list of verifier keys")
            return cls(
                Note.parse(str(doc["checkpoint"]).encode()),
                str(doc["log_key"]),
                tuple(witnesses),
                entries,
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise EvidenceError(f"malformed evidence bundle: {exc!r}") from exc
        except NoteError as exc:
            raise EvidenceError(f"the bundle's checkpoint is malformed: {exc.message}") from exc


@dataclass(frozen=True, slots=True)
class Verified:
    checkpoint: Checkpoint
    entries: tuple[ProvenEntry, ...]
    cosigned_by: tuple[tuple[str, int], ...]  # (witness name, cosignature time)
    log_key_from_bundle: bool  # True: compare the log key's id with the published one


def verify_bundle(
    bundle: Bundle,
    *,
    log_key: Verifier | None = None,
    witness_keys: Sequence[Verifier] = (),
    quorum: int = 0,
) -> Verified:
    """Every entry is in the log at the checkpoint, and the checkpoint is the log's own,
    cosigned by at least ``quorum`` of ``witness_keys``. Raises EvidenceError otherwise."""
    try:
        key = log_key or Verifier.from_vkey(bundle.log_key)
        checkpoint = open_checkpoint(bundle.checkpoint, key)
        cosigned = []
        for witness in witness_keys:
            try:
                cosigned.append((witness.name, cosignature_time(bundle.checkpoint, witness)))
            except NoteError:
                continue  # absent or bad: counted below against the quorum
    except NoteError as exc:
        raise EvidenceError(f"the checkpoint does not verify: {exc.message}") from exc
    if len(cosigned) < quorum:
        raise EvidenceError(
            f"the checkpoint is cosigned by {len(cosigned)} of the trusted witnesses, "
            f"fewer than {quorum}"
        )
    for entry in bundle.entries:
        try:
            verify_inclusion(
                leaf_hash(entry.body), entry.leaf_index, checkpoint.size, entry.proof,
                checkpoint.root,
            )  # fmt: skip
        except ProofError as exc:
            raise EvidenceError(
                f"entry {entry.leaf_index} is not in the log: {exc.message}"
            ) from exc
    return Verified(checkpoint, bundle.entries, tuple(cosigned), log_key is None)


def _index(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EvidenceError("a leaf index is a non-negative integer")
    return value
