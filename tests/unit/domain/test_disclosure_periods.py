"""Disclosure periods that depend on a field of the record (a punishment's severity), as the
catalog states them, and the stored end of a record's period that the policy judges."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credit_gateway.domain.catalog import Catalog, CatalogError, Period, PeriodRule
from credit_gateway.domain.policy import RecordState, disclosure_until

CATALOG_FILE = Path(__file__).resolve().parents[3] / "src/credit_gateway/data/catalog.json"
BUNDLED = Catalog.from_document(json.loads(CATALOG_FILE.read_text()))
PUNISHMENT = BUNDLED.items["ADM.PUNISHMENT"]
AT = datetime(2026, 3, 1, 8, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("payload", "shortest", "longest"),
    [
        ({"severity": "general"}, 90, 365),  # national practice: 3 months to 1 year
        ({"severity": "serious"}, 365, 1095),  # 1 to 3 years
        ({}, 0, 1095),  # not said: the item's period, the longest
        ({"severity": "minor"}, 0, 1095),  # a value the rule does not name (the schema refuses it)
        ({"severity": 3}, 0, 1095),  # not text
    ],
)
def test_the_bundled_punishment_period_follows_its_severity(
    payload: dict[str, Any], shortest: int, longest: int
) -> None:
    assert PUNISHMENT.period_for(payload) == Period(shortest, longest)
    assert PUNISHMENT.disclosure_until(payload, AT) == AT + longest * DAY


def test_the_bundled_schema_admits_the_severities_the_rule_names() -> None:
    assert PUNISHMENT.period_rule is not None
    named = set(PUNISHMENT.period_rule.periods)
    assert set(PUNISHMENT.schema["properties"]["severity"]["enum"]) == named


def test_items_without_a_rule_keep_their_one_period() -> None:
    permit = BUNDLED.items["ADM.PERMIT"]
    assert permit.period_rule is None
    assert permit.period_for({"severity": "serious"}) == Period(0, permit.disclosure_period_days)


@pytest.mark.parametrize(
    ("shortest", "longest"), [(-1, 10), (11, 10), (0, 0)], ids=["negative", "inverted", "zero"]
)
def test_a_period_out_of_order_does_not_load(shortest: int, longest: int) -> None:
    with pytest.raises(CatalogError, match="shortest <= longest"):
        Period(shortest, longest)


def test_a_rule_without_field_or_periods_does_not_load() -> None:
    with pytest.raises(CatalogError):
        PeriodRule("", {"general": Period(1, 2)})
    with pytest.raises(CatalogError):
        PeriodRule("severity", {})


def test_a_catalog_with_a_bad_rule_does_not_load() -> None:
    doc = json.loads(CATALOG_FILE.read_text())
    item = next(i for i in doc["items"] if i["code"] == "ADM.PUNISHMENT")
    item["disclosure_period_by"]["periods"]["general"] = {"shortest_days": 400, "longest_days": 9}
    with pytest.raises(CatalogError):
        Catalog.from_document(doc)
    del item["disclosure_period_by"]["periods"]["general"]["longest_days"]
    with pytest.raises(CatalogError, match="malformed catalog"):
        Catalog.from_document(doc)


@given(
    severity=st.sampled_from(["general", "serious", None]),
    offset=st.integers(min_value=-(10**6), max_value=10**6),
)
def test_property_the_stored_end_is_what_the_policy_judges(
    severity: str | None, offset: int
) -> None:
    payload = {} if severity is None else {"severity": severity}
    until = PUNISHMENT.disclosure_until(payload, AT)
    period = PUNISHMENT.period_for(payload)
    assert AT + period.shortest * DAY <= until == AT + period.longest * DAY
    stored = RecordState("r", PUNISHMENT.code, AT, disclosure_until=until)
    assert disclosure_until(stored, PUNISHMENT) == until
    # A record stored before the rule existed has none: the item's default period applies.
    legacy = RecordState("r", PUNISHMENT.code, AT)
    assert disclosure_until(legacy, PUNISHMENT) == AT + PUNISHMENT.disclosure_period_days * DAY
    # Whatever is stored governs, earlier or later than the default (a restoration's end).
    moved = RecordState("r", PUNISHMENT.code, AT, disclosure_until=AT + timedelta(seconds=offset))
    assert disclosure_until(moved, PUNISHMENT) == AT + timedelta(seconds=offset)
