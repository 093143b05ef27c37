"""Malformed ids and codes from a caller, reaching the database.

Fixed in dcc024f ("edge validation"): agreement, consent and request ids, purposes and item
codes went unchecked into queries, so a caller's typo (an id longer than its column, a NUL)
came back as a database error, answered INTERNAL, or as a refusal about something else. They
are now checked at the gRPC edge (adapters/grpc/convert.py) and refused INVALID_ARGUMENT naming
the field, before anything is read or written.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from support.harness import PERSON
from support.rpc import field_violations, status_of
from support.scenario import AGREEMENT, PURPOSE, Consented, audit_ids

from credit_gateway.adapters.grpc.v1 import consent_pb2, inquiry_pb2, inquiry_pb2_grpc

BAD_QUERIES = {
    "over-long agreement id": ({"agreement_id": "a" * 65}, "agreement_id"),
    "agreement id with a NUL": ({"agreement_id": "agr\x00x"}, "agreement_id"),
    "purpose with a space": ({"purpose": "LOAN APPROVAL"}, "purpose"),
    "malformed item code": ({"item_codes": ["adm punishment"]}, "item_codes"),
    "item code with a newline": ({"item_codes": ["ADM.PUNISHMENT\n"]}, "item_codes"),
}


@pytest.mark.parametrize(("fields", "field"), BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_a_malformed_query_is_refused_at_the_edge(
    world: Consented, fields: dict[str, Any], field: str
) -> None:
    query = {"subject_code": PERSON, "purpose": PURPOSE, "agreement_id": AGREEMENT, **fields}
    stub = inquiry_pb2_grpc.InquiryServiceStub(world.agency.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.QueryOpen(inquiry_pb2.QueryRequest(**query), metadata=world.md(), timeout=10)
    assert status_of(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert field_violations(caught.value) == {field}
    assert audit_ids(world.h.db) == set()  # refused before the release path


@pytest.mark.parametrize("consent_id", ["c" * 41, "cns\x00", "cns 1"], ids=["long", "nul", "space"])
def test_a_malformed_consent_id_is_refused_at_the_edge(world: Consented, consent_id: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        world.consents.GetConsent(
            consent_pb2.ConsentRef(consent_id=consent_id), metadata=world.subject_md(), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {"consent_id"}


def test_a_malformed_request_id_is_refused_at_the_edge(world: Consented) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        world.consents.RejectConsentRequest(
            consent_pb2.ConsentRequestRef(request_id="r" * 41),
            metadata=world.subject_md(),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == {"request_id"}
