"""A government department under a government-sharing agreement that covers every category
its records are in, at every level up to government, and records of a person and a company that
Art 20 para 1 shares (permits, commendations, registration) or does not (tax paid, a market loan
repayment record). For tests/integration/test_government_sharing.py and its regression guard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from support.harness import (
    COMPANY,
    PERSON,
    Harness,
    Participant,
    make_agreement,
    metadata,
    signed_record,
)

from credit_gateway.adapters.grpc.v1 import inquiry_pb2, inquiry_pb2_grpc, submission_pb2_grpc

AGREEMENT = "agr-hubei-drc"
PURPOSE = "SUPERVISION"


@dataclass(frozen=True)
class Seed:
    provider: str
    item: str
    subject: str
    payload: dict[str, Any]
    marker: str  # found in this payload alone, so a leak shows in the response bytes


SEEDS = {
    "p_permit": Seed(
        "hubei-amr",
        "ADM.PERMIT",
        PERSON,
        {"permit_no": "M-p_permit", "permit_type": "food", "authority": "AMR"},
        "M-p_permit",
    ),
    "p_vol": Seed(
        "hubei-civil-affairs",
        "COM.VOLUNTEER",
        PERSON,
        {"kind": "donation", "description": "M-p_vol", "awarded_on": "2026-01-01"},
        "M-p_vol",
    ),
    "p_tax": Seed("hubei-tax", "TAX.PAID", PERSON, {"year": 2025, "amount_cny": 71717.17}, "71717"),
    "p_loan": Seed(
        "hubei-credit-association",
        "MKT.LOAN_REPAYMENT",
        PERSON,
        {"lender": "M-p_loan", "status": "overdue", "overdue_days": 40},
        "M-p_loan",
    ),
    "c_reg": Seed(
        "hubei-amr",
        "REG.ENTERPRISE",
        COMPANY,
        {"name": "M-c_reg", "established_on": "2015-03-01"},
        "M-c_reg",
    ),
    "c_tax": Seed(
        "hubei-tax", "TAX.PAID", COMPANY, {"year": 2025, "amount_cny": 82828.28}, "82828"
    ),
}
WITHHELD = {
    "TAX.PAID": "WRITTEN_CONSENT_REQUIRED",  # Art 16 para 2 (2), Art 19
    "MKT.LOAN_REPAYMENT": "NOT_PUBLIC_CREDIT_INFORMATION",  # Art 3, Art 20 para 1
}


@dataclass
class World:
    h: Harness
    gov: Participant
    ids: dict[str, str]  # seed label -> record id


def government_world(harness: Harness) -> World:
    """The providers and their records; a government department whose agreement covers every
    category the records are in, at every level up to government."""
    h = harness
    providers = {s.provider for s in SEEDS.values()}
    parties = {p: h.add_participant(p, "providing-unit") for p in sorted(providers)}
    gov = h.add_participant("hubei-drc", "government-department")
    make_agreement(
        h,
        gov,
        operations=("government_sharing",),
        categories=(
            "registration",
            "administrative_permit",
            "administrative_other",
            "commendation_volunteer",
            "market",
        ),
        purposes=(PURPOSE,),
        levels=("open", "authorized", "government"),
    )
    ids = {}
    for label, seed in SEEDS.items():
        provider = parties[seed.provider]
        record = signed_record(
            provider,
            record_id=label,
            item=seed.item,
            subject=seed.subject,
            payload=seed.payload,
            occurred_at=h.clock.now - timedelta(days=5),
        )
        result = submission_pb2_grpc.SubmissionServiceStub(provider.channel).SubmitRecords(
            iter([record]), metadata=metadata(h.token(provider)), timeout=10
        )
        assert result.accepted == 1, result
        ids[label] = result.results[0].record_id
    return World(h, gov, ids)


def share(world: World, subject: str, *items: str) -> Any:
    request = inquiry_pb2.QueryRequest(
        subject_code=subject, item_codes=list(items), purpose=PURPOSE, agreement_id=AGREEMENT
    )
    return inquiry_pb2_grpc.InquiryServiceStub(world.gov.channel).ShareGovernment(
        request, metadata=metadata(world.h.token(world.gov)), timeout=10
    )
