"""ShareGovernment gives a government department the public credit information the center holds,
for its duties and without consent (Art 20 para 1), and nothing else: market information (Art 3)
and Art 16 para 2 (2) written-consent items (tax paid) are withheld with their reason, even when
the department's agreement covers them at every level (domain/policy.py, rows art20p1-*)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import select
from support.harness import (
    COMPANY,
    PERSON,
    Harness,
    Participant,
    make_agreement,
    metadata,
    signed_record,
)
from support.rpc import status_of

from credit_gateway.adapters.grpc.v1 import inquiry_pb2, inquiry_pb2_grpc, submission_pb2_grpc
from credit_gateway.adapters.storage.tables import AuditEntryRow, Base

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


@pytest.fixture
def world(harness: Harness) -> World:
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


def audit_bodies(h: Harness) -> list[dict[str, Any]]:
    with h.db.transaction(write=False) as session:
        bodies = session.scalars(select(AuditEntryRow.body).order_by(AuditEntryRow.seq))
        return [json.loads(body) for body in bodies]


def everything_but_the_audit_log(h: Harness) -> dict[str, list[Any]]:
    with h.db.transaction(write=False) as session:
        return {
            table.name: sorted(map(tuple, session.execute(select(table)).all()), key=repr)
            for table in Base.metadata.sorted_tables
            if table.name != AuditEntryRow.__tablename__
        }


def assert_hidden(world: World, answer: Any, *labels: str) -> None:
    wire = answer.SerializeToString()
    for label in labels:
        assert world.ids[label].encode() not in wire, f"{label}: record id released"
        assert SEEDS[label].marker.encode() not in wire, f"{label}: payload released"


def test_a_department_gets_a_persons_public_information_but_not_tax_paid_or_market_records(
    world: World,
) -> None:
    answer = share(world, PERSON, "ADM.PERMIT", "COM.VOLUNTEER", "TAX.PAID", "MKT.LOAN_REPAYMENT")

    assert {r.record_id for r in answer.records} == {world.ids["p_permit"], world.ids["p_vol"]}
    assert {(w.item_code, w.reason, w.count) for w in answer.withheld} == {
        (code, reason, 0) for code, reason in WITHHELD.items()
    }
    assert_hidden(world, answer, "p_tax", "p_loan")
    (entry,) = audit_bodies(world.h)
    assert entry["method"] == "ShareGovernment"
    assert set(entry["released"]) == {world.ids["p_permit"], world.ids["p_vol"]}
    assert set(entry["reasons"]) == set(WITHHELD.values())


def test_without_items_named_a_department_is_told_what_the_law_withholds(world: World) -> None:
    answer = share(world, PERSON)

    assert {r.record_id for r in answer.records} == {world.ids["p_permit"], world.ids["p_vol"]}
    assert {(w.item_code, w.reason) for w in answer.withheld} >= set(WITHHELD.items())
    assert_hidden(world, answer, "p_tax", "p_loan")


def test_a_companys_tax_paid_is_withheld_too_and_its_open_registration_released(
    world: World,
) -> None:
    answer = share(world, COMPANY, "REG.ENTERPRISE", "TAX.PAID")

    assert [r.record_id for r in answer.records] == [world.ids["c_reg"]]
    assert {(w.item_code, w.reason) for w in answer.withheld} == {
        ("TAX.PAID", "WRITTEN_CONSENT_REQUIRED")
    }
    assert_hidden(world, answer, "c_tax")


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        (("TAX.PAID",), "WRITTEN_CONSENT_REQUIRED"),
        (("MKT.LOAN_REPAYMENT",), "NOT_PUBLIC_CREDIT_INFORMATION"),
        (("MKT.LOAN_REPAYMENT", "TAX.PAID"), "NOT_PUBLIC_CREDIT_INFORMATION"),
    ],
    ids=["tax-paid", "market", "both"],
)
def test_asking_only_for_what_the_law_withholds_is_refused_and_changes_nothing(
    world: World, items: tuple[str, ...], reason: str
) -> None:
    share(world, PERSON, "ADM.PERMIT")  # the day's usage row exists, with this call counted
    before = everything_but_the_audit_log(world.h)

    with pytest.raises(grpc.RpcError) as refused:
        share(world, PERSON, *items)

    assert status_of(refused.value) == (grpc.StatusCode.PERMISSION_DENIED, reason)
    for label in ("p_tax", "p_loan"):
        assert SEEDS[label].marker not in str(refused.value.details())
    assert everything_but_the_audit_log(world.h) == before  # not a call of the quota either
    _, entry = audit_bodies(world.h)
    assert (entry["released"], entry["reasons"][0]) == ([], reason)
