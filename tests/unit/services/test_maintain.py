"""The pure parts of the time rules (services/maintain.py): the default-period cutoffs a run asks
storage for, held to the policy's own judgement, and the audit entries each rule writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from credit_gateway.domain.audit import MAINTAIN_METHODS, OPERATOR
from credit_gateway.domain.catalog import Catalog
from credit_gateway.domain.policy import RecordState, disclosure_until
from credit_gateway.services.maintain import (
    JOBS,
    Report,
    default_cutoffs,
    expiry_entry,
    period_ended_entries,
    prune_entry,
    suspension_entry,
)

CATALOG = Catalog.from_document(
    json.loads(
        (Path(__file__).resolve().parents[3] / "src/credit_gateway/data/catalog.json").read_text()
    )
)
NOW = datetime(2029, 6, 1, 12, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize("code", sorted(CATALOG.items))
def test_a_record_is_past_its_default_period_from_its_items_cutoff_on_as_the_policy_judges(
    code: str,
) -> None:
    item = CATALOG.items[code]
    (cutoff,) = [c for c, codes in default_cutoffs(CATALOG, NOW).items() if code in codes]
    at_cutoff = RecordState("r", code, occurred_at=cutoff)  # stored before disclosure_until
    later = RecordState("r", code, occurred_at=cutoff + TICK)
    assert disclosure_until(at_cutoff, item) <= NOW  # the policy withholds it: ended
    assert disclosure_until(later, item) > NOW  # not yet


def test_items_of_one_period_share_a_cutoff() -> None:
    cutoffs = default_cutoffs(CATALOG, NOW)
    assert sorted(c for codes in cutoffs.values() for c in codes) == sorted(CATALOG.items)
    assert len(cutoffs) == len({i.disclosure_period_days for i in CATALOG.items.values()})
    assert default_cutoffs(Catalog("empty", {}), NOW) == {}


def test_each_rule_writes_an_operators_entry_naming_what_it_moved() -> None:
    suspended = suspension_entry("obj-1", "rec-1", "sbj-1", NOW)
    expired = expiry_entry("cns-1", "sbj-1", NOW)
    pruned = prune_entry(NOW - timedelta(days=1095), 7, NOW)
    ended = period_ended_entries(
        [("rec-2", "ADM.PERMIT", "sbj-b"), ("rec-1", "ADM.PERMIT", "sbj-a"),
         ("rec-3", "REG.ENTERPRISE", "sbj-b")],
        NOW,
    )  # fmt: skip
    found = [
        (e.method, e.outcome, e.subject_id, e.consent_id, e.items, e.reasons)
        for e in (suspended, expired, pruned, *ended)
    ]
    assert found == [
        ("maintain.objection-suspended", "SUSPENDED", "sbj-1", None, ("obj-1", "rec-1"),
         ("OBJECTION_SUSPENDED",)),
        ("maintain.consent-expired", "EXPIRED", "sbj-1", "cns-1", (), ("CONSENT_EXPIRED",)),
        ("maintain.inquiries-pruned", "PRUNED", None, None, ("2026-06-02T12:00:00Z", "7"), ()),
        # One entry a subject, its records in order.
        ("maintain.disclosure-ended", "ARCHIVED", "sbj-a", None, ("rec-1",),
         ("DISCLOSURE_PERIOD_ENDED",)),
        ("maintain.disclosure-ended", "ARCHIVED", "sbj-b", None, ("rec-2", "rec-3"),
         ("DISCLOSURE_PERIOD_ENDED",)),
    ]  # fmt: skip
    entries = (suspended, expired, pruned, *ended)
    assert {e.method for e in entries} == MAINTAIN_METHODS
    assert {(e.caller, e.at) for e in entries} == {(OPERATOR, NOW)}
    assert len({e.id for e in entries}) == len(entries)
    assert period_ended_entries([], NOW) == []


def test_a_report_adds_up_what_its_jobs_moved() -> None:
    assert Report(dict.fromkeys(JOBS, 0)).moved == 0
    assert Report({**dict.fromkeys(JOBS, 0), "consent-expired": 2, "feed-pruned": 3}).moved == 5
