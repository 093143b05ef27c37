"""PullRecords: a platform pulls the records of a list of subjects, each one a release of the
release path on Channel.EXCHANGE_PULL (policy: bulk_pull, platforms only, public credit
information only), each one an audit entry, answered subject by subject (support/feed.py)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from support.feed import AGREEMENT, OTHER_COMPANY, Exchange, entries, exchange_world
from support.harness import COMPANY, PERSON, Harness, make_agreement
from support.rpc import refusal

from credit_gateway.adapters.storage.tables import AuditEntryRow, QuotaUsageRow
from credit_gateway.services import operator


@pytest.fixture
def world(harness: Harness) -> Exchange:
    x = exchange_world(harness)
    x.submit(
        ("c_reg", "REG.ENTERPRISE", COMPANY),
        ("c_vol", "COM.VOLUNTEER", COMPANY),  # outside the agreement
        ("c_loan", "MKT.LOAN_REPAYMENT", COMPANY),  # market information
        ("c_tax", "TAX.PAID", COMPANY),  # Art 16 written consent
        ("o_permit", "ADM.PERMIT", OTHER_COMPANY),
        ("p_permit", "ADM.PERMIT", PERSON),
    )
    # Past its disclosure period (1095 days) when pulled.
    x.submit(("c_old", "ADM.PUNISHMENT", COMPANY), days_ago=1100)
    return x


def _state(h: Harness) -> tuple[int, list[Any]]:
    with h.db.transaction(write=False) as session:
        count = session.scalar(select(func.count()).select_from(AuditEntryRow))
        usage = session.execute(select(QuotaUsageRow.calls, QuotaUsageRow.records)).all()
    return int(count or 0), sorted(map(tuple, usage))


def test_a_platform_pulls_three_subjects_and_gets_what_the_agreement_and_the_law_allow(
    world: Exchange,
) -> None:
    answers = world.pull(COMPANY, OTHER_COMPANY, PERSON)

    assert [(a.index, a.subject_code, a.refused_reason) for a in answers] == [
        (0, COMPANY, ""),
        (1, OTHER_COMPANY, ""),
        (2, PERSON, ""),
    ]
    released = [[r.record_id for r in a.records] for a in answers]
    assert released == [[world.ids["c_reg"]], [world.ids["o_permit"]], [world.ids["p_permit"]]]
    wire = b"".join(a.SerializeToString() for a in answers)
    for hidden in ("c_vol", "c_loan", "c_tax", "c_old"):
        assert world.ids[hidden].encode() not in wire, hidden
    assert b"M-c_reg" in wire
    assert b"M-c_vol" not in wire
    assert b"M-c_loan" not in wire
    # Each subject one entry, the release's, named by the answer.
    pulled = entries(world.h, "PullRecords")
    assert [e["id"] for e in pulled] == [a.inquiry_id for a in answers]
    assert [e["released"] for e in pulled] == released
    assert {e["agreement"] for e in pulled} == {AGREEMENT}
    assert {"NOT_PUBLIC_CREDIT_INFORMATION", "WRITTEN_CONSENT_REQUIRED"} <= set(
        pulled[0]["reasons"]
    )
    assert "DISCLOSURE_PERIOD_ENDED" in pulled[0]["reasons"]
    # What the caller is told withheld says nothing of the records (item reasons only).
    assert {(w.item_code, w.reason) for w in answers[0].withheld} >= {
        ("MKT.LOAN_REPAYMENT", "NOT_PUBLIC_CREDIT_INFORMATION"),
        ("TAX.PAID", "WRITTEN_CONSENT_REQUIRED"),
    }


def test_items_named_are_all_a_pull_looks_at(world: Exchange) -> None:
    (answer,) = world.pull(COMPANY, items=["REG.ENTERPRISE", "COM.VOLUNTEER"])

    assert [r.record_id for r in answer.records] == [world.ids["c_reg"]]
    assert ("COM.VOLUNTEER", "ITEM_NOT_AGREED") in {
        (w.item_code, w.reason) for w in answer.withheld
    }


def test_asking_only_for_what_the_law_withholds_refuses_each_subject_on_record(
    world: Exchange,
) -> None:
    answers = world.pull(COMPANY, PERSON, items=["MKT.LOAN_REPAYMENT"])

    assert [(a.refused_reason, len(a.records)) for a in answers] == [
        ("NOT_PUBLIC_CREDIT_INFORMATION", 0),
        ("NOT_PUBLIC_CREDIT_INFORMATION", 0),
    ]
    assert [e["outcome"] for e in entries(world.h, "PullRecords")] == ["REFUSED", "REFUSED"]


def test_more_subjects_than_the_bound_is_refused_and_nothing_is_on_record(
    world: Exchange,
) -> None:
    before = _state(world.h)
    limit = world.h.settings.pull_max_subjects

    code, reason = refusal(lambda: world.pull(*([COMPANY] * (limit + 1))))

    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_SUBJECTS")
    assert _state(world.h) == before


def test_no_subject_is_refused(world: Exchange) -> None:
    before = _state(world.h)
    assert refusal(lambda: world.pull())[0] is grpc.StatusCode.INVALID_ARGUMENT
    assert _state(world.h) == before


def test_a_bad_code_refuses_that_subject_and_the_others_are_answered(world: Exchange) -> None:
    answers = world.pull(COMPANY, "91350100M000100Y44", PERSON)

    assert [a.index for a in answers] == [0, 1, 2]
    assert answers[1].refused_reason == "BAD_IDENTIFIER"
    assert answers[1].refused_message
    assert not answers[1].records
    assert not answers[1].inquiry_id
    assert [r.record_id for r in answers[0].records] == [world.ids["c_reg"]]
    assert [r.record_id for r in answers[2].records] == [world.ids["p_permit"]]
    assert len(entries(world.h, "PullRecords")) == 2


def test_the_quota_refuses_the_subjects_past_it_and_the_stream_goes_on(harness: Harness) -> None:
    h = harness
    x = exchange_world(h)
    x.submit(("c_reg", "REG.ENTERPRISE", COMPANY))
    make_agreement(
        h,
        x.platform,
        agreement_id="agr-quota",
        operations=("bulk_pull",),
        categories=("registration",),
        purposes=("SUPERVISION",),
        calls_per_day=2,
    )

    answers = x.pull(COMPANY, COMPANY, COMPANY, agreement_id="agr-quota")

    assert [a.refused_reason for a in answers] == ["", "", "QUOTA_CALLS_EXHAUSTED"]
    assert [e["outcome"] for e in entries(h, "PullRecords")] == ["RELEASED", "RELEASED", "REFUSED"]


def test_an_agreement_suspended_ends_the_pull_after_the_first_refusal_is_on_record(
    world: Exchange,
) -> None:
    operator.suspend_agreement(world.h.settings, AGREEMENT)

    code, reason = refusal(lambda: world.pull(COMPANY, OTHER_COMPANY, PERSON))

    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "AGREEMENT_SUSPENDED")
    (entry,) = entries(world.h, "PullRecords")
    assert (entry["outcome"], entry["reasons"]) == ("REFUSED", ["AGREEMENT_SUSPENDED"])


def test_a_credit_agency_may_not_pull(world: Exchange) -> None:
    agency = world.h.add_participant("zx-credit", "credit-agency")
    before = _state(world.h)

    # Its token cannot carry the scope: the interceptor refuses it.
    assert refusal(lambda: world.pull(COMPANY, caller=agency)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SCOPE_MISSING",
    )
    assert _state(world.h) == before
    # A token made to carry it anyway: the policy refuses the caller's kind, on record.
    token = world.h.token(agency, ["exchange.pull"])
    assert refusal(lambda: world.pull(COMPANY, PERSON, caller=agency, token=token)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_KIND_NOT_ALLOWED",
    )
    (entry,) = entries(world.h, "PullRecords")
    assert (entry["caller"], entry["reasons"]) == ("zx-credit", ["CALLER_KIND_NOT_ALLOWED"])
