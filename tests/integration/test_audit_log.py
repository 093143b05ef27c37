"""The audit log as the gateway runs it: every release's entry reaches a signed checkpoint by
the server's own integrator, with a MAC the integrator accepts and a proof that verifies."""

from __future__ import annotations

from sqlalchemy import select
from support.audit_entries import INQUIRIES
from support.harness import COMPANY, Harness, make_agreement, metadata
from support.waiting import wait_until

from credit_gateway.adapters.grpc.v1 import inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.adapters.storage.tables import AuditEntryRow
from credit_gateway.crypto.notes import Note, open_checkpoint
from credit_gateway.domain.merkle import verify_inclusion
from credit_gateway.errors import NotFound


def _has_checkpoint(h: Harness, size: int) -> bool:
    try:
        return h.gateway.audit.checkpoint().size >= size
    except NotFound:
        return False


def test_releases_are_integrated_by_the_server_and_proven(harness: Harness) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    make_agreement(harness, agency, categories=("registration",))
    stub = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)
    query = inquiry_pb2.QueryRequest(
        subject_code=COMPANY, purpose="LOAN_APPROVAL", agreement_id="agr-zx-credit"
    )
    ids = [stub.QueryOpen(query, metadata=metadata(harness.token(agency)), timeout=5).inquiry_id
           for _ in range(3)]  # fmt: skip
    wait_until(lambda: _has_checkpoint(harness, 3), what="for the integrator")
    audit = harness.gateway.audit
    signed = audit.checkpoint()
    checkpoint = open_checkpoint(Note.parse(signed.note), audit.verifier)
    assert checkpoint.origin == harness.settings.effective_audit_origin
    with harness.db.transaction(write=False) as session:
        rows = session.execute(
            select(AuditEntryRow.id, AuditEntryRow.leaf_index, AuditEntryRow.quarantined).where(
                INQUIRIES
            )
        ).all()
    assert {r.id for r in rows} == set(ids)
    assert not any(r.quarantined for r in rows)  # the release path's MAC holds
    for row in rows:
        assert row.leaf_index is not None
        proof = audit.inclusion(row.leaf_index, None, checkpoint.size)
        verify_inclusion(
            proof.leaf_hash, row.leaf_index, checkpoint.size, proof.hashes, checkpoint.root
        )
    assert audit.verify() == []
