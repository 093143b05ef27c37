"""ShareGovernment gives a government department the public credit information the center holds,
for its duties and without consent (Art 20 para 1), and nothing else: market information (Art 3)
and Art 16 para 2 (2) written-consent items (tax paid) are withheld with their reason, even when
the department's agreement covers them at every level (domain/policy.py, rows art20p1-*)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from sqlalchemy import select
from support.audit_entries import INQUIRIES
from support.databases import rows_but_the_log
from support.government import SEEDS, WITHHELD, World, government_world, share
from support.harness import COMPANY, PERSON, Harness
from support.rpc import status_of

from credit_gateway.adapters.storage.tables import AuditEntryRow


@pytest.fixture
def world(harness: Harness) -> World:
    return government_world(harness)


def audit_bodies(h: Harness) -> list[dict[str, Any]]:
    with h.db.transaction(write=False) as session:
        query = select(AuditEntryRow.body).where(INQUIRIES).order_by(AuditEntryRow.seq)
        return [json.loads(body) for body in session.scalars(query)]


def everything_but_the_audit_log(h: Harness) -> dict[str, list[Any]]:
    with h.db.transaction(write=False) as session:
        return rows_but_the_log(session)


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
