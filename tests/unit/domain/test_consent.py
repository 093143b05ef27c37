"""Tests for credit_gateway.domain.consent: lifecycle, effective status, Art 16/19 terms rules,
the consent document and the artefact a subject signs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_gateway.domain.canonical import canonical_bytes, parse_json_object
from credit_gateway.domain.catalog import (
    Art16Class,
    Catalog,
    CatalogItem,
    Category,
    DisclosureLevel,
    InfoKind,
    Polarity,
    Purpose,
)
from credit_gateway.domain.consent import (
    AGREED_USE_ONLY,
    ARTEFACT_FORMAT,
    CONDITIONS,
    NO_ONWARD_DISCLOSURE,
    Consent,
    ConsentStatus,
    ConsentTerms,
    artefact_bytes,
    transition,
)
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PERSON = "11010519491231002X"
COMPANY = "91350100M000100Y43"
S = ConsentStatus


def item(
    code: str,
    category: Category,
    art16: Art16Class = Art16Class.ORDINARY,
    level: DisclosureLevel = DisclosureLevel.AUTHORIZED,
) -> CatalogItem:
    return CatalogItem(
        code=code,
        title=code.title(),
        category=category,
        info_kind=InfoKind.PUBLIC,
        polarity=Polarity.NEUTRAL,
        providers=frozenset({"provider-a"}),
        schema={"type": "object"},
        disclosure={kind: level for kind in SubjectKind},
        disclosure_period_days=365,
        art16=art16,
    )


PUNISHMENT = item("ADM.PUNISHMENT", Category.ADMINISTRATIVE_PUNISHMENT)
PERMIT = item("ADM.PERMIT", Category.ADMINISTRATIVE_PERMIT)
INCOME = item("NP.INCOME", Category.MARKET, Art16Class.WRITTEN_CONSENT)
REAL_ESTATE = item("NP.REAL_ESTATE", Category.MARKET, Art16Class.WRITTEN_CONSENT)
LOAN = Purpose(
    "LOAN", "Loan application", max_validity_days=90, max_data_range_days=730, max_uses=5
)
CATALOG = Catalog(
    version="test-1",
    items={i.code: i for i in (PUNISHMENT, PERMIT, INCOME, REAL_ESTATE)},
    purposes={LOAN.code: LOAN},
)


def terms(**changes: Any) -> ConsentTerms:
    base = ConsentTerms(
        grantee="agency-a",
        purpose_code="LOAN",
        purpose_text="Loan application no. 42",
        item_codes=frozenset({"NP.INCOME"}),
        categories=frozenset({Category.ADMINISTRATIVE_PUNISHMENT}),
        data_from=NOW - timedelta(days=365),
        data_to=NOW,
        valid_from=NOW,
        valid_until=NOW + timedelta(days=30),
        max_uses=3,
    )
    return dataclasses.replace(base, **changes)


def consent(status: ConsentStatus = S.ACTIVE, uses: int = 0, **term_changes: Any) -> Consent:
    return Consent(
        id="cns_1",
        subject_id=PERSON,
        terms=terms(**term_changes),
        status=status,
        uses=uses,
        granted_at=NOW,
        status_changed_at=NOW,
        evidence="subject-signature",
    )


# ------------------------------------------------------------------ lifecycle

ALLOWED = {
    (S.ACTIVE, S.PAUSED),
    (S.ACTIVE, S.REVOKED),
    (S.ACTIVE, S.EXPIRED),
    (S.ACTIVE, S.EXHAUSTED),
    (S.PAUSED, S.ACTIVE),
    (S.PAUSED, S.REVOKED),
    (S.PAUSED, S.EXPIRED),
    (S.PAUSED, S.EXHAUSTED),
}
PAIRS = [(a, b) for a in ConsentStatus for b in ConsentStatus]


@pytest.mark.parametrize(
    ("current", "target"),
    [p for p in PAIRS if p in ALLOWED],
    ids=[f"{a.value}->{b.value}" for a, b in PAIRS if (a, b) in ALLOWED],
)
def test_allowed_transition(current: ConsentStatus, target: ConsentStatus) -> None:
    assert transition(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [p for p in PAIRS if p not in ALLOWED],
    ids=[f"{a.value}->{b.value}" for a, b in PAIRS if (a, b) not in ALLOWED],
)
def test_forbidden_transition(current: ConsentStatus, target: ConsentStatus) -> None:
    with pytest.raises(FailedPrecondition) as raised:
        transition(current, target)
    assert raised.value.reason == f"CONSENT_{current.name}"


def test_transition_table_is_complete() -> None:
    assert len(PAIRS) == 25
    assert len(ALLOWED) == 8


@pytest.mark.parametrize("status", list(ConsentStatus), ids=lambda s: s.value)
def test_terminal_states_are_exactly_those_that_never_change(status: ConsentStatus) -> None:
    leaves = any((status, target) in ALLOWED for target in ConsentStatus)
    assert status.terminal is not leaves
    assert status.terminal is (status in {S.REVOKED, S.EXPIRED, S.EXHAUSTED})


# ------------------------------------------------------------------ effective status


@pytest.mark.parametrize(
    ("stored", "uses", "at", "expected"),
    [
        pytest.param(S.ACTIVE, 0, NOW, S.ACTIVE, id="active"),
        pytest.param(S.PAUSED, 0, NOW, S.PAUSED, id="paused"),
        pytest.param(
            S.ACTIVE, 0, NOW - timedelta(days=1), S.ACTIVE, id="before-window-still-active"
        ),
        pytest.param(S.ACTIVE, 2, NOW, S.ACTIVE, id="one-use-left"),
        pytest.param(S.ACTIVE, 3, NOW, S.EXHAUSTED, id="uses-spent"),
        pytest.param(S.ACTIVE, 4, NOW, S.EXHAUSTED, id="uses-overspent"),
        pytest.param(S.PAUSED, 3, NOW, S.EXHAUSTED, id="paused-uses-spent"),
        pytest.param(
            S.ACTIVE,
            0,
            NOW + timedelta(days=30) - timedelta(microseconds=1),
            S.ACTIVE,
            id="last-instant-of-window",
        ),
        pytest.param(S.ACTIVE, 0, NOW + timedelta(days=30), S.EXPIRED, id="at-valid-until"),
        pytest.param(S.PAUSED, 0, NOW + timedelta(days=31), S.EXPIRED, id="paused-after-window"),
        pytest.param(
            S.ACTIVE, 3, NOW + timedelta(days=31), S.EXPIRED, id="expiry-before-exhaustion"
        ),
        pytest.param(S.REVOKED, 0, NOW, S.REVOKED, id="revoked"),
        pytest.param(S.REVOKED, 3, NOW + timedelta(days=31), S.REVOKED, id="revoked-stays-revoked"),
        pytest.param(S.EXHAUSTED, 0, NOW + timedelta(days=31), S.EXHAUSTED, id="exhausted-stays"),
        pytest.param(S.EXPIRED, 0, NOW, S.EXPIRED, id="expired-stays"),
    ],
)
def test_effective_status(
    stored: ConsentStatus, uses: int, at: datetime, expected: ConsentStatus
) -> None:
    assert consent(stored, uses).effective_status(at) is expected


# ------------------------------------------------------------------ covers (Art 16)


@pytest.mark.parametrize(
    ("codes", "categories", "catalog_item", "expected"),
    [
        pytest.param({"ADM.PUNISHMENT"}, set(), PUNISHMENT, True, id="ordinary-named"),
        pytest.param(
            set(), {Category.ADMINISTRATIVE_PUNISHMENT}, PUNISHMENT, True, id="ordinary-by-category"
        ),
        pytest.param(
            set(), {Category.ADMINISTRATIVE_PERMIT}, PUNISHMENT, False, id="other-category"
        ),
        pytest.param({"ADM.PERMIT"}, set(), PUNISHMENT, False, id="other-item-named"),
        pytest.param({"NP.INCOME"}, set(), INCOME, True, id="art16-written-consent-named"),
        pytest.param(
            set(), {Category.MARKET}, INCOME, False, id="art16-written-consent-by-category"
        ),
        pytest.param(
            {"NP.INCOME"},
            {Category.MARKET},
            REAL_ESTATE,
            False,
            id="art16-each-written-consent-item-named-one-by-one",
        ),
        pytest.param(set(), set(), PUNISHMENT, False, id="nothing"),
    ],
)
def test_covers(
    codes: set[str], categories: set[Category], catalog_item: CatalogItem, expected: bool
) -> None:
    t = terms(item_codes=frozenset(codes), categories=frozenset(categories))
    assert t.covers(catalog_item) is expected


# ------------------------------------------------------------------ validate


def test_valid_terms_pass() -> None:
    terms().validate(CATALOG, NOW)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"valid_until": NOW + timedelta(days=90)}, id="validity-at-purpose-limit"),
        pytest.param({"data_from": NOW - timedelta(days=730)}, id="data-range-at-purpose-limit"),
        pytest.param({"max_uses": 5}, id="uses-at-purpose-limit"),
        pytest.param({"max_uses": 1}, id="one-use"),
        pytest.param({"item_codes": frozenset()}, id="categories-only"),
        pytest.param({"categories": frozenset()}, id="items-only"),
        pytest.param({"valid_from": NOW - timedelta(days=10)}, id="started-in-the-past"),
    ],
)
def test_valid_terms_at_the_limits_pass(changes: dict[str, Any]) -> None:
    terms(**changes).validate(CATALOG, NOW)


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        pytest.param(
            {"purpose_code": "MARKETING"},
            "terms.purpose_code",
            "purpose list",
            id="unknown-purpose",
        ),
        pytest.param(
            {"item_codes": frozenset(), "categories": frozenset()},
            "terms.item_codes",
            "at least one",
            id="nothing-named",
        ),
        pytest.param(
            {"item_codes": frozenset({"NP.SALARY"})},
            "terms.item_codes",
            "not in the catalog",
            id="unknown-item",
        ),
        pytest.param(
            {"data_to": NOW - timedelta(days=365)},
            "terms.data_to",
            "ends before",
            id="empty-data-range",
        ),
        pytest.param(
            {"data_to": NOW - timedelta(days=400)},
            "terms.data_to",
            "ends before",
            id="reversed-data-range",
        ),
        pytest.param(
            {"valid_from": NOW + timedelta(days=1), "valid_until": NOW + timedelta(days=1)},
            "terms.valid_until",
            "ends before",
            id="empty-validity",
        ),
        pytest.param(
            {"valid_from": NOW - timedelta(days=20), "valid_until": NOW},
            "terms.valid_until",
            "already ended",
            id="validity-over",
        ),
        pytest.param({"max_uses": 0}, "terms.max_uses", "at least 1", id="zero-uses"),
        pytest.param({"max_uses": -1}, "terms.max_uses", "at least 1", id="negative-uses"),
        pytest.param(
            {"valid_until": NOW + timedelta(days=90, seconds=1)},
            "terms.valid_until",
            "at most 90 days",
            id="purpose-validity-limit",
        ),
        pytest.param(
            {"data_from": NOW - timedelta(days=730, seconds=1)},
            "terms.data_from",
            "at most 730 days",
            id="purpose-data-range-limit",
        ),
        pytest.param({"max_uses": 6}, "terms.max_uses", "at most 5 uses", id="purpose-use-limit"),
    ],
)
def test_each_violation_is_named_with_its_field(
    changes: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        terms(**changes).validate(CATALOG, NOW)
    assert raised.value.reason == "CONSENT_TERMS_INVALID"
    assert [(v.field, fragment in v.description) for v in raised.value.violations] == [
        (field, True)
    ]


def test_all_violations_are_reported_together() -> None:
    bad = terms(
        item_codes=frozenset({"NP.SALARY", "NP.BONUS"}),
        data_to=NOW - timedelta(days=400),
        valid_until=NOW + timedelta(days=365),
        max_uses=50,
    )
    with pytest.raises(InvalidArgument) as raised:
        bad.validate(CATALOG, NOW)
    fields = [v.field for v in raised.value.violations]
    assert fields == [
        "terms.item_codes",
        "terms.item_codes",
        "terms.data_to",
        "terms.valid_until",
        "terms.max_uses",
    ]
    assert "NP.BONUS" in raised.value.violations[0].description  # sorted, one per item


def test_unknown_purpose_skips_the_purpose_limits() -> None:
    with pytest.raises(InvalidArgument) as raised:
        terms(purpose_code="NOPE", max_uses=1000).validate(CATALOG, NOW)
    assert [v.field for v in raised.value.violations] == ["terms.purpose_code"]


def test_naive_times_are_a_named_violation() -> None:
    naive = terms(
        data_from=datetime(2024, 3, 1),
        data_to=datetime(2025, 3, 1),
        valid_from=datetime(2025, 3, 1),
        valid_until=datetime(2025, 3, 31),
    )
    with pytest.raises(InvalidArgument) as raised:
        naive.validate(CATALOG, NOW)
    assert raised.value.reason == "CONSENT_TERMS_INVALID"


# ------------------------------------------------------------------ the document (Art 19)


def test_document_shape_names_the_art19_conditions() -> None:
    doc = terms().to_document()
    assert doc == {
        "grantee": "agency-a",
        "purpose": {"code": "LOAN", "text": "Loan application no. 42"},
        "items": ["NP.INCOME"],
        "categories": ["administrative_punishment"],
        "data_range": ["2024-03-01T12:00:00Z", "2025-03-01T12:00:00Z"],
        "validity": ["2025-03-01T12:00:00Z", "2025-03-31T12:00:00Z"],
        "max_uses": 3,
        "conditions": [NO_ONWARD_DISCLOSURE, AGREED_USE_ONLY],
    }
    assert tuple(doc["conditions"]) == CONDITIONS


CODES = st.from_regex(r"[A-Z][A-Z0-9_.-]{1,12}", fullmatch=True)
TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]
)
TIMES = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    OFFSETS,
)
TERMS = st.builds(
    ConsentTerms,
    grantee=st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True),
    purpose_code=CODES,
    purpose_text=TEXT,
    item_codes=st.frozensets(CODES, max_size=4),
    categories=st.frozensets(st.sampled_from(Category)),
    data_from=TIMES,
    data_to=TIMES,
    valid_from=TIMES,
    valid_until=TIMES,
    max_uses=st.integers(min_value=-(2**31), max_value=2**31),
)


@settings(max_examples=100, deadline=None)
@given(TERMS)
def test_document_round_trip(t: ConsentTerms) -> None:
    back = ConsentTerms.from_document(t.to_document())
    assert back == t
    # and through the stored, canonical form, with the same offsets kept
    stored = ConsentTerms.from_document(parse_json_object(canonical_bytes(t.to_document())))
    assert stored == t
    assert stored.to_document() == t.to_document()


# ------------------------------------------------------------------ the artefact


def test_artefact_bytes_are_canonical_and_name_everything() -> None:
    data = artefact_bytes(PERSON, terms())
    assert parse_json_object(data) == {
        "format": ARTEFACT_FORMAT,
        "subject": PERSON,
        "terms": terms().to_document(),
    }
    assert canonical_bytes(parse_json_object(data)) == data


def test_artefact_bytes_are_stable() -> None:
    a = artefact_bytes(PERSON, terms(item_codes=frozenset(["B.TWO", "A.ONE", "C.THREE"])))
    b = artefact_bytes(PERSON, terms(item_codes=frozenset(["C.THREE", "A.ONE", "B.TWO"])))
    cats = [Category.JUDICIAL, Category.MARKET, Category.REGISTRATION]
    c = artefact_bytes(PERSON, terms(categories=frozenset(cats)))
    d = artefact_bytes(PERSON, terms(categories=frozenset(reversed(cats))))
    assert a == b
    assert c == d
    assert artefact_bytes(PERSON, terms()) == artefact_bytes(PERSON, terms())


TERM_CHANGES: list[tuple[str, Any]] = [
    ("grantee", "agency-b"),
    ("purpose_code", "LEASE"),
    ("purpose_text", "Loan application no. 43"),
    ("item_codes", frozenset({"NP.INCOME", "NP.REAL_ESTATE"})),
    ("categories", frozenset({Category.JUDICIAL})),
    ("data_from", NOW - timedelta(days=364)),
    ("data_to", NOW + timedelta(seconds=1)),
    ("valid_from", NOW + timedelta(microseconds=1)),
    ("valid_until", NOW + timedelta(days=29)),
    ("max_uses", 4),
]


def test_term_changes_cover_every_field() -> None:
    assert {name for name, _ in TERM_CHANGES} == {f.name for f in dataclasses.fields(ConsentTerms)}


@pytest.mark.parametrize(("name", "value"), TERM_CHANGES, ids=[n for n, _ in TERM_CHANGES])
def test_artefact_bytes_change_when_any_term_changes(name: str, value: Any) -> None:
    changed = terms(**{name: value})
    assert changed != terms()
    assert artefact_bytes(PERSON, changed) != artefact_bytes(PERSON, terms())


def test_artefact_bytes_change_with_the_subject() -> None:
    assert artefact_bytes(COMPANY, terms()) != artefact_bytes(PERSON, terms())
