"""The witness's add-checkpoint decision (C2SP tlog-witness): each refusal and its status."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.crypto.notes import ED25519, Checkpoint, Note, Signer, sign_checkpoint
from credit_gateway.domain.merkle import LeafHashes, consistency_proof, root
from credit_gateway.domain.witness import AddCheckpoint, Latest, WitnessRefusal, decide

ORIGIN = "credit-gateway.hubei.example/audit"
LOG = Signer(ORIGIN, ED25519, Ed25519PrivateKey.generate())
KEYS = {ORIGIN: LOG.verifier}
LEAVES = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(64)]
NODES = LeafHashes(LEAVES)


def note(size: int, signer: Signer = LOG, fork: bool = False) -> Note:
    leaves = LEAVES[:size] if not fork else [*LEAVES[: size - 1], bytes(32)]
    return sign_checkpoint(Checkpoint(signer.name, size, root(LeafHashes(leaves), size)), signer)


def latest(size: int) -> Latest:
    return Latest(size, root(NODES, size))


def request(old: int, new: int, **kw: bool) -> AddCheckpoint:
    proof = tuple(consistency_proof(NODES, old, new)) if old else ()
    return AddCheckpoint(old, proof, note(new, **kw))


@given(st.integers(min_value=1, max_value=63), st.data())
def test_a_consistent_checkpoint_is_accepted(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(min_value=0, max_value=new))
    known = latest(old) if old else None
    wire = AddCheckpoint.parse(request(old, new).encode())  # through the wire format
    assert decide(wire, known, KEYS) == Checkpoint(ORIGIN, new, root(NODES, new))


def _status(req: AddCheckpoint, known: Latest | None) -> tuple[int, str]:
    with pytest.raises(WitnessRefusal) as refused:
        decide(req, known, KEYS)
    return refused.value.status, refused.value.reason


def test_an_unknown_log_is_404_and_a_bad_signature_403() -> None:
    stranger = Signer("other.example/log", ED25519, Ed25519PrivateKey.generate())
    assert _status(AddCheckpoint(0, (), note(3, stranger)), None) == (404, "WITNESS_UNKNOWN_LOG")
    impostor = Signer(ORIGIN, ED25519, Ed25519PrivateKey.generate())
    assert _status(AddCheckpoint(0, (), note(3, impostor)), None) == (403, "WITNESS_BAD_SIGNATURE")


def test_a_stale_old_size_is_409_with_the_latest_size() -> None:
    with pytest.raises(WitnessRefusal) as refused:
        decide(request(5, 9), latest(7), KEYS)
    assert (refused.value.status, refused.value.latest_size) == (409, 7)
    assert _status(request(0, 9), latest(7)) == (409, "WITNESS_CONFLICT")


def test_a_fork_is_refused() -> None:
    # A different tree of a size already cosigned: a split view.
    assert _status(AddCheckpoint(8, (), note(8, fork=True)), latest(8)) == (409, "WITNESS_CONFLICT")
    # A larger tree that does not extend the one cosigned.
    forked = AddCheckpoint(8, tuple(consistency_proof(NODES, 8, 20)), note(20, fork=True))
    assert _status(forked, latest(8)) == (422, "WITNESS_PROOF_INVALID")


def test_old_larger_than_new_is_400_and_a_proof_from_zero_is_422() -> None:
    assert _status(AddCheckpoint(9, (), note(5)), latest(9)) == (400, "WITNESS_BAD_REQUEST")
    assert _status(AddCheckpoint(0, (bytes(32),), note(5)), None) == (422, "WITNESS_PROOF_INVALID")


@pytest.mark.parametrize(
    "body",
    [
        b"old 05\n\n",
        b"old 1\n",
        b"new 1\n\nx\n",
        b"old 1\n" + b"AAAA\n" * 64 + b"\n",
        b"old 1\nnot base64!\n\n",
    ],
    ids=["leading-zero", "no-blank-line", "not-old", "64-proof-lines", "bad-base64"],
)
def test_malformed_requests_are_400(body: bytes) -> None:
    with pytest.raises(WitnessRefusal) as refused:
        AddCheckpoint.parse(body + note(3).encode())
    assert refused.value.status == 400
