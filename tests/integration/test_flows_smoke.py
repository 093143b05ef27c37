"""A first end-to-end pass: submission, open inquiry, consent, authorized inquiry, revocation."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from support.harness import COMPANY, PERSON, Harness, make_agreement, metadata, signed_record

from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import (
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2_grpc,
)


def test_consent_story(harness: Harness) -> None:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    tax = h.add_participant("hubei-tax", "providing-unit")
    agency = h.add_participant("zx-credit", "credit-agency")
    portal = h.add_participant("realname-portal", "identity-provider")
    make_agreement(
        h, agency, categories=("administrative_punishment", "registration", "administrative_other")
    )
    now = h.clock.now
    batch = [
        signed_record(
            amr,
            record_id="amr-1",
            item="REG.ENTERPRISE",
            subject=COMPANY,
            payload={"name": "Wuhan Example Co.", "established_on": "2015-03-01"},
            occurred_at=now - timedelta(days=10),
        ),
        signed_record(
            amr,
            record_id="amr-2",
            item="ADM.PUNISHMENT",
            subject=PERSON,
            payload={
                "decision_no": "E-1",
                "violation": "v",
                "penalty": "fine",
                "decided_on": "2026-01-02",
                "authority": "AMR",
            },
            occurred_at=now - timedelta(days=5),
            notice="N-1",
        ),
    ]
    result = submission_pb2_grpc.SubmissionServiceStub(amr.channel).SubmitRecords(
        iter(batch), metadata=metadata(h.token(amr)), timeout=10
    )
    assert (result.accepted, result.rejected) == (2, 0), result
    tax_batch = [
        signed_record(
            tax,
            record_id="t-1",
            item="TAX.PAID",
            subject=PERSON,
            payload={"year": 2025, "amount_cny": 1234.5},
            occurred_at=now - timedelta(days=3),
        )
    ]
    result = submission_pb2_grpc.SubmissionServiceStub(tax.channel).SubmitRecords(
        iter(tax_batch), metadata=metadata(h.token(tax)), timeout=10
    )
    assert result.accepted == 1, result

    inquiry = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)
    open_answer = inquiry.QueryOpen(
        inquiry_pb2.QueryRequest(
            subject_code=COMPANY, purpose="LOAN_APPROVAL", agreement_id="agr-zx-credit"
        ),
        metadata=metadata(h.token(agency)),
        timeout=10,
    )
    assert [r.item_code for r in open_answer.records] == ["REG.ENTERPRISE"]

    consent_stub = consent_pb2_grpc.ConsentServiceStub(portal.channel)
    subject_md = metadata(h.subject_token(portal, PERSON))
    terms = consent_pb2.ConsentTerms(
        grantee="zx-credit",
        purpose_code="LOAN_APPROVAL",
        purpose_text="mortgage",
        item_codes=["TAX.PAID"],
        categories=["administrative_punishment"],
        data_from=to_timestamp(now - timedelta(days=365)),
        data_to=to_timestamp(now + timedelta(days=1)),
        valid_from=to_timestamp(now - timedelta(minutes=1)),
        valid_until=to_timestamp(now + timedelta(days=30)),
        max_uses=5,
    )
    granted = consent_stub.GrantConsent(
        consent_pb2.GrantConsentRequest(terms=terms), metadata=subject_md, timeout=10
    )
    query = inquiry_pb2.AuthorizedQueryRequest(
        query=inquiry_pb2.QueryRequest(
            subject_code=PERSON,
            purpose="LOAN_APPROVAL",
            agreement_id="agr-zx-credit",
            item_codes=["TAX.PAID", "ADM.PUNISHMENT"],
        ),
        consent_token=granted.token.token,
    )
    answer = inquiry.QueryAuthorized(query, metadata=metadata(h.token(agency)), timeout=10)
    assert sorted(r.item_code for r in answer.records) == ["ADM.PUNISHMENT", "TAX.PAID"]
    assert "NO_ONWARD_DISCLOSURE" in answer.conditions

    consent_stub.RevokeConsent(
        consent_pb2.ConsentRef(consent_id=granted.consent.consent_id),
        metadata=subject_md,
        timeout=10,
    )
    with pytest.raises(grpc.RpcError) as refused:
        inquiry.QueryAuthorized(query, metadata=metadata(h.token(agency)), timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "CONSENT_REVOKED" in refused.value.details()

    listed = consent_stub.ListInquiries(
        consent_pb2.ListInquiriesRequest(), metadata=subject_md, timeout=10
    )
    assert [e.outcome for e in listed.inquiries] == ["REFUSED", "RELEASED"]
