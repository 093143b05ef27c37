"""AuditService end to end (issue #13): releases are made, the log is integrated (directly, so
the checkpoints' sizes are the test's), and a client checks what it is told with nothing but the
pure verifiers: the checkpoint opens under the vkey it came with, an entry's inclusion proof
leads to its root, a consistency proof joins two checkpoints. Checkpoints and proofs are for
every caller with a token; the entries for auditors. Every refusal with its status and reason,
and none of them writes anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select
from support.harness import COMPANY, Harness, Participant, make_agreement, metadata
from support.rpc import refusal
from support.scenario import audit_ids

from credit_gateway.adapters.grpc.v1 import audit_pb2, audit_pb2_grpc, inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.adapters.storage.tables import AuditCheckpointRow, AuditEntryRow, ParticipantRow
from credit_gateway.auth.scopes import AUDIT_PROOF, AUDIT_READ, SCOPES_BY_KIND, SUBJECT_SCOPES
from credit_gateway.cli.main import main
from credit_gateway.crypto.notes import (
    COSIGNATURE_V1,
    Note,
    Signer,
    Verifier,
    cosign,
    cosignature_time,
    open_checkpoint,
)
from credit_gateway.domain.audit import leaf_hash
from credit_gateway.domain.merkle import verify_consistency, verify_inclusion
from credit_gateway.domain.participants import ParticipantKind

pytestmark = pytest.mark.db

BEYOND = 2**64 - 1  # the largest uint64: past anything stored
IN = grpc.StatusCode.INVALID_ARGUMENT
NF = grpc.StatusCode.NOT_FOUND
PD = grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture
def harness(paused_harness: Harness) -> Harness:
    return paused_harness  # each test integrates when it means to


def _audit(channel: grpc.Channel) -> audit_pb2_grpc.AuditServiceStub:
    return audit_pb2_grpc.AuditServiceStub(channel)


def _released(h: Harness, agency: Participant, n: int) -> list[str]:
    """n open releases about COMPANY; their inquiry ids (each its audit entry's id)."""
    stub = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)
    query = inquiry_pb2.QueryRequest(
        subject_code=COMPANY, purpose="LOAN_APPROVAL", agreement_id=f"agr-{agency.id}"
    )
    md = metadata(h.token(agency))
    return [stub.QueryOpen(query, metadata=md, timeout=5).inquiry_id for _ in range(n)]


def _integrated(h: Harness) -> int:
    """Integrates everything waiting; the tree's size."""
    while h.gateway.audit.integrate() is not None:
        pass
    return h.gateway.audit.checkpoint().size


def _leaves(h: Harness, ids: list[str]) -> dict[str, tuple[int, bytes]]:
    """Each entry's leaf index and leaf hash, by id."""
    with h.db.transaction(write=False) as session:
        rows = session.execute(
            select(AuditEntryRow.id, AuditEntryRow.leaf_index, AuditEntryRow.leaf_hash).where(
                AuditEntryRow.id.in_(ids)
            )
        ).all()
    return {r.id: (int(r.leaf_index), bytes(r.leaf_hash)) for r in rows}


def _stored(h: Harness) -> tuple[set[str], list[bytes]]:
    """What a refusal must leave as it was: the entries, and every checkpoint's note."""
    with h.db.transaction(write=False) as session:
        notes = [bytes(n) for n in session.scalars(select(AuditCheckpointRow.note))]
    return audit_ids(h.db), sorted(notes)


@pytest.fixture
def log(harness: Harness) -> tuple[Participant, list[str], int, int]:
    """An agency, its five releases, and two checkpoints: after three of them, after all."""
    agency = harness.add_participant("zx-credit", "credit-agency")
    make_agreement(harness, agency, categories=("registration",))
    ids = _released(harness, agency, 3)
    first = _integrated(harness)
    ids += _released(harness, agency, 2)
    return agency, ids, first, _integrated(harness)


def test_checkpoints_open_and_proofs_verify_under_the_key_they_came_with(
    harness: Harness, log: tuple[Participant, list[str], int, int]
) -> None:
    agency, ids, first, latest = log
    stub, md = _audit(agency.channel), metadata(harness.token(agency))
    signed = stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(), metadata=md, timeout=5)
    key = Verifier.from_vkey(signed.log_key)
    checkpoint = open_checkpoint(Note.parse(signed.note), key)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (
        signed.origin,
        signed.tree_size,
        signed.root_hash,
    )
    assert signed.origin == harness.settings.effective_audit_origin
    assert signed.tree_size == latest
    assert signed.note == harness.gateway.audit.checkpoint().note  # as stored, byte for byte
    old = stub.GetCheckpoint(
        audit_pb2.GetCheckpointRequest(tree_size=first), metadata=md, timeout=5
    )
    old_root = open_checkpoint(Note.parse(old.note), key).root
    assert old.tree_size == first < latest

    leaves = _leaves(harness, ids)
    for inquiry_id in ids:
        index, leaf = leaves[inquiry_id]
        by_index = stub.GetInclusionProof(
            audit_pb2.InclusionProofRequest(leaf_index=index), metadata=md, timeout=5
        )
        assert (by_index.leaf_index, by_index.tree_size, by_index.leaf_hash) == (
            index,
            latest,
            leaf,
        )
        verify_inclusion(leaf, index, latest, list(by_index.hashes), checkpoint.root)
        if index < first:  # and at the older checkpoint, found by its hash
            by_hash = stub.GetInclusionProof(
                audit_pb2.InclusionProofRequest(leaf_hash=leaf, tree_size=first),
                metadata=md,
                timeout=5,
            )
            assert (by_hash.leaf_index, by_hash.tree_size) == (index, first)
            verify_inclusion(leaf, index, first, list(by_hash.hashes), old_root)

    for old_size, new_size in ((first, 0), (first, latest), (latest, latest)):
        proof = stub.GetConsistencyProof(
            audit_pb2.ConsistencyProofRequest(old_size=old_size, new_size=new_size),
            metadata=md,
            timeout=5,
        )
        assert (proof.old_size, proof.new_size) == (old_size, latest)
        start_root = old_root if old_size == first else checkpoint.root
        verify_consistency(old_size, latest, start_root, checkpoint.root, list(proof.hashes))


def test_a_checkpoint_is_served_with_its_cosignatures(
    harness: Harness, log: tuple[Participant, list[str], int, int]
) -> None:
    agency, _, _, latest = log
    audit = harness.gateway.audit
    witness = Signer("witness.example/w1", COSIGNATURE_V1, Ed25519PrivateKey.generate())
    audit.add_cosignatures(latest, [cosign(audit.latest_note(), witness, 1_780_000_000)])
    signed = _audit(agency.channel).GetCheckpoint(
        audit_pb2.GetCheckpointRequest(), metadata=metadata(harness.token(agency)), timeout=5
    )
    note = Note.parse(signed.note)
    assert open_checkpoint(note, Verifier.from_vkey(signed.log_key)).size == latest
    assert cosignature_time(note, witness.verifier) == 1_780_000_000
    assert signed.note == audit.checkpoint(latest).note


def test_every_kind_with_a_token_gets_checkpoints_and_proofs(
    harness: Harness, log: tuple[Participant, list[str], int, int]
) -> None:
    kinds = [k for k in ParticipantKind if AUDIT_PROOF in SCOPES_BY_KIND[k]]
    # A real-name portal gets no token of its own: its subjects' tokens carry the scope.
    assert set(ParticipantKind) - set(kinds) == {ParticipantKind.IDENTITY_PROVIDER}
    assert AUDIT_PROOF in SUBJECT_SCOPES
    _, _, _, latest = log
    for kind in kinds:
        caller = harness.add_participant(f"caller-{kind}", kind)
        md = metadata(harness.token(caller))
        stub = _audit(caller.channel)
        assert stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(), metadata=md).tree_size == latest
        proof = stub.GetInclusionProof(
            audit_pb2.InclusionProofRequest(leaf_index=0), metadata=md, timeout=5
        )
        assert proof.tree_size == latest


def test_a_subject_fetches_the_proof_of_its_own_entry(
    harness: Harness, log: tuple[Participant, list[str], int, int]
) -> None:
    _, ids, _, latest = log
    portal = harness.add_participant("realname-portal", "identity-provider")
    index, leaf = _leaves(harness, ids)[ids[0]]  # a release about COMPANY
    subject = _audit(portal.channel)
    md = metadata(harness.subject_token(portal, COMPANY, scopes=sorted(SUBJECT_SCOPES)))
    signed = subject.GetCheckpoint(audit_pb2.GetCheckpointRequest(), metadata=md, timeout=5)
    checkpoint = open_checkpoint(Note.parse(signed.note), harness.gateway.audit.verifier)
    proof = subject.GetInclusionProof(
        audit_pb2.InclusionProofRequest(leaf_hash=leaf), metadata=md, timeout=5
    )
    verify_inclusion(leaf, index, latest, list(proof.hashes), checkpoint.root)
    narrow = metadata(harness.subject_token(portal, COMPANY, scopes=["subject.self"]))
    assert refusal(
        lambda: subject.GetCheckpoint(audit_pb2.GetCheckpointRequest(), metadata=narrow)
    ) == (PD, "SCOPE_MISSING")


def test_an_auditor_reads_the_entries_even_once_pruned(
    harness: Harness, log: tuple[Participant, list[str], int, int]
) -> None:
    _, ids, _, latest = log
    auditor = harness.add_participant("provincial-audit", "auditor")
    stub = _audit(auditor.channel)

    def read(start: int, end: int) -> list[audit_pb2.LogEntry]:
        request = audit_pb2.GetEntriesRequest(start=start, end=end)
        md = metadata(harness.token(auditor))
        return list(stub.GetEntries(request, metadata=md, timeout=5).entries)

    entries = read(0, latest + 10)  # fewer where the tree ends
    assert [e.leaf_index for e in entries] == list(range(latest))
    assert all(leaf_hash(e.body) == e.leaf_hash and not e.pruned for e in entries)
    leaves = _leaves(harness, ids)
    for index, leaf in leaves.values():
        assert entries[index].leaf_hash == leaf
        assert ids[0].encode() in entries[leaves[ids[0]][0]].body
    assert [e.leaf_index for e in read(1, 3)] == [1, 2]

    # Past retention (Art 19) the bodies go, the hashes stay: old proofs still verify.
    harness.clock.advance(days=harness.settings.audit_retention_days + 1)
    assert harness.gateway.audit.prune(harness.clock.now - harness.gateway.audit.retention) > 0
    pruned = read(0, latest)
    assert all(e.pruned and e.body == b"" for e in pruned)
    assert [e.leaf_hash for e in pruned] == [e.leaf_hash for e in entries]


def test_an_auditor_is_shown_the_gap_a_deleted_entry_leaves(
    harness: Harness, log: tuple[Participant, list[str], int, int]
) -> None:
    _, _, _, latest = log
    auditor = harness.add_participant("provincial-audit", "auditor")
    with harness.db.transaction() as session:  # behind the gateway's back
        session.execute(delete(AuditEntryRow).where(AuditEntryRow.leaf_index == 1))
    md = metadata(harness.token(auditor))

    def indexes(start: int, end: int) -> list[int]:
        request = audit_pb2.GetEntriesRequest(start=start, end=end)
        answer = _audit(auditor.channel).GetEntries(request, metadata=md, timeout=5)
        return [e.leaf_index for e in answer.entries]

    assert indexes(0, latest) == [0, *range(2, latest)]
    assert indexes(1, 2) == []  # inside the tree: an empty answer, not a refusal


def test_the_auditor_kind_is_registered_by_the_cli(harness: Harness, tmp_path: Path) -> None:
    config = str(harness.write_config(tmp_path / "gateway.toml"))
    name = "city-audit"
    assert main(["--config", config, "certs", "issue", name, "--kind", "auditor"]) == 0
    cert = harness.settings.certs_dir / "participants" / f"{name}.pem"
    assert main(["--config", config, "participants", "add", "--id", name, "--kind", "auditor",
                 "--org-code", "91350100M000100Y43", "--name", "City audit office",
                 "--cert", str(cert)]) == 0  # fmt: skip
    with harness.db.transaction(write=False) as session:
        row = session.get(ParticipantRow, name)
        assert row is not None
        assert (row.kind, frozenset(row.scopes.split())) == (
            "auditor",
            SCOPES_BY_KIND[ParticipantKind.AUDITOR],
        )


def test_the_entries_are_for_auditors_alone(
    harness: Harness, log: tuple[Participant, list[str], int, int]
) -> None:
    agency, *_ = log
    portal = harness.add_participant("realname-portal", "identity-provider")
    auditor = harness.add_participant("provincial-audit", "auditor")
    before = _stored(harness)
    request = audit_pb2.GetEntriesRequest(start=0, end=1)

    def entries(caller: Participant, token: str) -> object:
        return _audit(caller.channel).GetEntries(request, metadata=metadata(token), timeout=5)

    # No participant kind but the auditor may hold audit.read: an agency's token cannot carry it.
    assert [k for k in ParticipantKind if AUDIT_READ in SCOPES_BY_KIND[k]] == [
        ParticipantKind.AUDITOR
    ]
    assert refusal(lambda: entries(agency, harness.token(agency))) == (PD, "SCOPE_MISSING")
    narrow = harness.token(auditor, scopes=[AUDIT_PROOF])
    assert refusal(lambda: entries(auditor, narrow)) == (PD, "SCOPE_MISSING")
    subject = harness.subject_token(portal, COMPANY, scopes=sorted(SUBJECT_SCOPES))
    assert refusal(lambda: entries(portal, subject)) == (PD, "WRONG_PRINCIPAL")
    assert refusal(lambda: _audit(agency.channel).GetEntries(request, timeout=5)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_MISSING",
    )
    narrow_agency = harness.token(agency, scopes=["inquiry.open"])
    assert refusal(
        lambda: _audit(agency.channel).GetCheckpoint(
            audit_pb2.GetCheckpointRequest(), metadata=metadata(narrow_agency), timeout=5
        )
    ) == (PD, "SCOPE_MISSING")
    assert _stored(harness) == before


def _refusals(
    h: Harness, caller: Participant
) -> Callable[[str, object], tuple[grpc.StatusCode, str]]:
    stub = _audit(caller.channel)

    def refused(method: str, request: object) -> tuple[grpc.StatusCode, str]:
        md = metadata(h.token(caller))
        return refusal(lambda: getattr(stub, method)(request, metadata=md, timeout=5))

    return refused


def test_before_any_checkpoint_every_method_says_so(harness: Harness) -> None:
    auditor = harness.add_participant("provincial-audit", "auditor")
    refused = _refusals(harness, auditor)
    none = (NF, "CHECKPOINT_NOT_FOUND")
    assert refused("GetCheckpoint", audit_pb2.GetCheckpointRequest()) == none
    assert refused("GetInclusionProof", audit_pb2.InclusionProofRequest(leaf_index=0)) == none
    assert refused("GetConsistencyProof", audit_pb2.ConsistencyProofRequest(old_size=1)) == none
    assert refused("GetEntries", audit_pb2.GetEntriesRequest(start=0, end=1)) == none


def test_malformed_and_out_of_range_requests_are_refused_with_their_reasons(
    harness: Harness, log: tuple[Participant, list[str], int, int]
) -> None:
    _, ids, first, latest = log
    auditor = harness.add_participant("provincial-audit", "auditor")
    refused = _refusals(harness, auditor)
    before = _stored(harness)
    unknown = (NF, "CHECKPOINT_NOT_FOUND")
    _, newer_leaf = _leaves(harness, ids)[ids[-1]]  # integrated after the first checkpoint

    checkpoint = audit_pb2.GetCheckpointRequest
    assert refused("GetCheckpoint", checkpoint(tree_size=first + 1)) == unknown
    assert refused("GetCheckpoint", checkpoint(tree_size=BEYOND)) == unknown

    inclusion = audit_pb2.InclusionProofRequest
    cases: list[tuple[object, tuple[grpc.StatusCode, str]]] = [
        (inclusion(), (IN, "MISSING_FIELD")),
        (inclusion(leaf_hash=b"\x00" * 31), (IN, "LEAF_HASH_INVALID")),
        (inclusion(leaf_hash=b"\x00" * 33), (IN, "LEAF_HASH_INVALID")),
        (inclusion(leaf_hash=b""), (IN, "LEAF_HASH_INVALID")),
        (inclusion(leaf_hash=b"\x07" * 32), (NF, "ENTRY_NOT_FOUND")),
        (inclusion(leaf_index=latest), (IN, "LEAF_OUT_OF_RANGE")),
        (inclusion(leaf_index=BEYOND), (IN, "LEAF_OUT_OF_RANGE")),
        (inclusion(leaf_hash=newer_leaf, tree_size=first), (IN, "LEAF_OUT_OF_RANGE")),
        (inclusion(leaf_index=0, tree_size=first + 1), unknown),
        (inclusion(leaf_index=0, tree_size=BEYOND), unknown),
    ]
    for request, expected in cases:
        assert refused("GetInclusionProof", request) == expected, request

    consistency = audit_pb2.ConsistencyProofRequest
    for request, expected in [
        (consistency(old_size=0), (IN, "SIZE_OUT_OF_RANGE")),
        (consistency(old_size=latest + 1), (IN, "SIZE_OUT_OF_RANGE")),
        (consistency(old_size=latest, new_size=first), (IN, "SIZE_OUT_OF_RANGE")),
        (consistency(old_size=BEYOND), (IN, "SIZE_OUT_OF_RANGE")),
        (consistency(old_size=1, new_size=first + 1), unknown),
        (consistency(old_size=1, new_size=BEYOND), unknown),
    ]:
        assert refused("GetConsistencyProof", request) == expected, request

    entries = audit_pb2.GetEntriesRequest
    for request, expected in [
        (entries(start=0, end=0), (IN, "RANGE_INVALID")),
        (entries(start=3, end=2), (IN, "RANGE_INVALID")),
        (entries(start=0, end=1001), (IN, "RANGE_INVALID")),
        (entries(start=0, end=BEYOND), (IN, "RANGE_INVALID")),
        (entries(start=latest, end=latest + 1), (IN, "LEAF_OUT_OF_RANGE")),
        (entries(start=BEYOND - 1, end=BEYOND), (IN, "LEAF_OUT_OF_RANGE")),
    ]:
        assert refused("GetEntries", request) == expected, request
    assert _stored(harness) == before
