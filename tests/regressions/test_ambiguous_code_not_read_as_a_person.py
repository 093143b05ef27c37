"""A code that is both a resident id and a USCC, queried without saying which, read as a person.

Fixed in b8f4097 (#11 item 1): `121101190408136711` was parsed as a natural person whatever the
caller meant, and a query about the public institution whose USCC it is was answered about a
person (withheld on the open channel), and the subject stored as one. A query now says which
kind it means (`subject_kind`); without it the code is refused SUBJECT_KIND_REQUIRED and nothing
is written, and a subject on record is never answered as the other kind.
"""

from __future__ import annotations

import grpc
from support.rpc import refusal
from support.scenario import AGREEMENT, PURPOSE, Consented, count

from credit_gateway.adapters.grpc.v1 import common_pb2, inquiry_pb2, inquiry_pb2_grpc
from credit_gateway.adapters.storage.tables import AuditEntryRow, SubjectRow

AMBIGUOUS = "121101190408136711"


def test_the_kind_is_never_guessed(world: Consented) -> None:
    stub = inquiry_pb2_grpc.InquiryServiceStub(world.agency.channel)

    def query(kind: int) -> object:
        request = inquiry_pb2.QueryRequest(
            subject_code=AMBIGUOUS, purpose=PURPOSE, agreement_id=AGREEMENT, subject_kind=kind
        )
        return stub.QueryOpen(request, metadata=world.md(), timeout=10)

    entries, subjects = count(world.h.db, AuditEntryRow), count(world.h.db, SubjectRow)
    assert refusal(lambda: query(common_pb2.SUBJECT_KIND_UNSPECIFIED)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SUBJECT_KIND_REQUIRED",
    )
    assert (count(world.h.db, AuditEntryRow), count(world.h.db, SubjectRow)) == (entries, subjects)
    query(common_pb2.SUBJECT_KIND_LEGAL_PERSON)
    assert refusal(lambda: query(common_pb2.SUBJECT_KIND_NATURAL_PERSON)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SUBJECT_KIND_MISMATCH",
    )
