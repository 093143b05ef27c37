"""Evidence bundles: built from a log in memory, checked offline, refused when anything moved."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit_gateway.crypto.notes import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    Signer,
    cosign,
    sign_checkpoint,
)
from credit_gateway.domain.audit import AuditEntry, leaf_hash
from credit_gateway.domain.evidence import (
    Bundle,
    EvidenceError,
    ProvenEntry,
    verify_bundle,
)
from credit_gateway.domain.merkle import LeafHashes, inclusion_proof, root

ORIGIN = "credit-gateway.hubei.example/audit"
LOG = Signer(ORIGIN, ED25519, Ed25519PrivateKey.generate())
WITNESS = Signer("witness.example/w1", COSIGNATURE_V1, Ed25519PrivateKey.generate())
OTHER_WITNESS = Signer("witness.example/w2", COSIGNATURE_V1, Ed25519PrivateKey.generate())


def entry(n: int, subject: str) -> bytes:
    return AuditEntry(
        id=f"aud-{n}",
        at=datetime(2026, 5, 1, 8, n % 60, tzinfo=UTC),
        caller="zx-credit",
        method="QueryAuthorized",
        subject_id=subject,
        purpose="LOAN_APPROVAL",
        items=("TAX.PAID",),
        outcome="RELEASED",
        reasons=(),
    ).body()


def bundle_for(subject: str, size: int = 13) -> Bundle:
    bodies = [entry(n, subject if n % 4 == 1 else "sub-other") for n in range(size)]
    nodes = LeafHashes([leaf_hash(b) for b in bodies])
    note = sign_checkpoint(Checkpoint(ORIGIN, size, root(nodes, size)), LOG)
    note = note.with_signature(cosign(note, WITNESS, 1_780_000_000))
    mine = [
        ProvenEntry(i, body, tuple(inclusion_proof(nodes, i, size)))
        for i, body in enumerate(bodies)
        if json.loads(body)["subject"] == subject
    ]
    return Bundle(note, LOG.verifier.vkey(), (WITNESS.verifier.vkey(),), tuple(mine))


def test_a_bundle_verifies_offline_through_json() -> None:
    bundle = Bundle.from_json(bundle_for("sub-1").to_json())
    verified = verify_bundle(
        bundle, log_key=LOG.verifier, witness_keys=[WITNESS.verifier], quorum=1
    )
    assert verified.checkpoint.size == 13
    assert [e.leaf_index for e in verified.entries] == [1, 5, 9]
    assert {e.document()["subject"] for e in verified.entries} == {"sub-1"}
    assert verified.cosigned_by == (("witness.example/w1", 1_780_000_000),)
    assert verified.log_key_from_bundle is False


def test_the_bundles_own_log_key_is_used_only_when_told_so() -> None:
    assert verify_bundle(bundle_for("sub-1")).log_key_from_bundle is True
    stranger = Signer(ORIGIN, ED25519, Ed25519PrivateKey.generate())
    with pytest.raises(EvidenceError, match="checkpoint does not verify"):
        verify_bundle(bundle_for("sub-1"), log_key=stranger.verifier)


def _with_entry(bundle: Bundle, at: int, **changes: object) -> Bundle:
    entries = list(bundle.entries)
    entries[at] = dataclasses.replace(entries[at], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(bundle, entries=tuple(entries))


@pytest.mark.parametrize("change", ["body", "leaf_index", "proof"])
def test_a_changed_entry_index_or_proof_is_refused(change: str) -> None:
    bundle = bundle_for("sub-1")
    first = bundle.entries[0]
    changes: dict[str, object] = {
        "body": first.body.replace(b"RELEASED", b"REFUSED"),
        "leaf_index": first.leaf_index + 1,
        "proof": first.proof[:-1],
    }
    with pytest.raises(EvidenceError, match="not in the log"):
        verify_bundle(_with_entry(bundle, 0, **{change: changes[change]}), log_key=LOG.verifier)


def test_a_quorum_needs_that_many_trusted_witnesses() -> None:
    bundle = bundle_for("sub-1")
    with pytest.raises(EvidenceError, match="cosigned by 0"):
        verify_bundle(bundle, log_key=LOG.verifier, witness_keys=[OTHER_WITNESS.verifier], quorum=1)
    with pytest.raises(EvidenceError, match="cosigned by 1"):
        verify_bundle(
            bundle,
            log_key=LOG.verifier,
            witness_keys=[WITNESS.verifier, OTHER_WITNESS.verifier],
            quorum=2,
        )


def test_a_checkpoint_with_a_changed_root_is_refused() -> None:
    bundle = bundle_for("sub-1")
    doc = json.loads(bundle.to_json())
    lines = doc["checkpoint"].split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    doc["checkpoint"] = "\n".join(lines)
    with pytest.raises(EvidenceError, match="checkpoint does not verify"):
        verify_bundle(Bundle.from_json(json.dumps(doc).encode()), log_key=LOG.verifier)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"format": "something/else"}',
        json.dumps({"format": "credit-gateway/evidence/v1", "entries": []}).encode(),
        json.dumps(
            {
                "format": "credit-gateway/evidence/v1",
                "log_key": "k",
                "checkpoint": "x\n",
                "entries": [{"leaf_index": -1, "entry": "", "proof": []}],
            }
        ).encode(),
    ],
    ids=["not-json", "array", "other-format", "no-checkpoint", "negative-index"],
)
def test_malformed_bundles_are_refused(data: bytes) -> None:
    with pytest.raises(EvidenceError):
        Bundle.from_json(data)
