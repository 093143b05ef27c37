"""A subject's own inquiry filed in the audit log under its identity number.

Fixed in c23b545: the audit entry of QueryOwn named its caller by the subject's code, for a
person the resident identity number, kept in clear in an append-only log that auditors read.
A self-inquiry's caller is `self` now, and no entry holds the number.
"""

from __future__ import annotations

from sqlalchemy import select
from support.audit_entries import INQUIRIES
from support.harness import PERSON
from support.scenario import Consented

from credit_gateway.adapters.grpc.v1 import inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.adapters.storage.tables import AuditEntryRow


def test_the_entry_of_a_self_inquiry_names_self(world: Consented) -> None:
    answer = inquiry_pb2_grpc.InquiryServiceStub(world.portal.channel).QueryOwn(
        inquiry_pb2.OwnQueryRequest(), metadata=world.subject_md(), timeout=10
    )
    assert len(answer.records) == 1
    with world.h.db.transaction(write=False) as session:
        query = select(AuditEntryRow.caller, AuditEntryRow.body).where(INQUIRIES)
        ((caller, body),) = session.execute(query)
    assert caller == "self"
    assert PERSON.encode() not in body
