"""Tests for the catalog (Art 9-10, 16-17), agreements (Art 20) and participants."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_gateway.domain import art16
from credit_gateway.domain.agreements import (
    CENTER,
    FORMAT,
    Agreement,
    AgreementSignature,
    Operation,
    Quotas,
    b64url,
    b64url_decode,
)
from credit_gateway.domain.canonical import canonical_bytes, parse_json_object
from credit_gateway.domain.catalog import (
    Art16Class,
    Catalog,
    CatalogError,
    CatalogItem,
    Category,
    DisclosureLevel,
    InfoKind,
    Polarity,
    Purpose,
)
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.participants import (
    Licence,
    Participant,
    ParticipantKind,
    ParticipantStatus,
)
from credit_gateway.errors import DomainError, InvalidArgument, PermissionDenied

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SHIPPED_CATALOG = Path(art16.__file__).parents[1] / "data" / "catalog.json"
NP, LP, OO = SubjectKind.NATURAL_PERSON, SubjectKind.LEGAL_PERSON, SubjectKind.OTHER_ORGANISATION
OPEN, AUTH, GOV, SELF = (
    DisclosureLevel.OPEN,
    DisclosureLevel.AUTHORIZED,
    DisclosureLevel.GOVERNMENT,
    DisclosureLevel.SELF,
)


# ------------------------------------------------------------------ catalog items


def catalog_item(**changes: Any) -> CatalogItem:
    fields: dict[str, Any] = {
        "code": "ADM.PUNISHMENT",
        "title": "Administrative punishment",
        "category": Category.ADMINISTRATIVE_PUNISHMENT,
        "info_kind": InfoKind.PUBLIC,
        "polarity": Polarity.UNTRUSTWORTHY,
        "providers": frozenset({"hubei-amr"}),
        "schema": {"type": "object"},
        "disclosure": {NP: AUTH, LP: OPEN, OO: OPEN},
        "disclosure_period_days": 1095,
        "art16": Art16Class.ORDINARY,
    }
    fields.update(changes)
    return CatalogItem(**fields)


def test_a_good_item_builds_and_reports_its_levels() -> None:
    item = catalog_item()
    assert item.level_for(NP) is AUTH
    assert item.level_for(LP) is OPEN
    assert item.open_by_state_provision == ""


@pytest.mark.parametrize(
    "code",
    ["AB", "A" + "B" * 63, "ADM.PUNISHMENT_2-X", "A0", "Z.", "A-"],
    ids=["shortest", "longest", "punctuation", "digit", "dot", "dash"],
)
def test_good_item_codes(code: str) -> None:
    assert catalog_item(code=code).code == code


@pytest.mark.parametrize(
    "code",
    ["", "A", "A" + "B" * 64, "adm.punishment", "1ABC", ".ABC", "AB C", "AB/C", "ÄB", " AB"],
    ids=[
        "empty",
        "one-char",
        "65-chars",
        "lower-case",
        "leading-digit",
        "leading-dot",
        "space",
        "slash",
        "non-ascii",
        "leading-space",
    ],
)
def test_bad_item_codes(code: str) -> None:
    with pytest.raises(CatalogError, match="item code"):
        catalog_item(code=code)


def test_item_code_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(CatalogError):
        catalog_item(code="ADM.PUNISHMENT\n")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"disclosure": {NP: AUTH, LP: OPEN}}, "every subject kind", id="kind-missing"),
        pytest.param({"disclosure": {}}, "every subject kind", id="no-levels"),
        pytest.param(
            {"disclosure": {NP: OPEN, LP: OPEN, OO: OPEN}},
            "State provision",
            id="art17-natural-person-open-without-state-provision",
        ),
        pytest.param(
            {"disclosure": {NP: AUTH, LP: OPEN, OO: OPEN, SubjectKind.INDIVIDUAL_BUSINESS: OPEN}},
            "State provision",
            id="art17-individual-business-open-without-state-provision",
        ),
        pytest.param(
            {"art16": Art16Class.PROHIBITED, "disclosure": {NP: SELF, LP: SELF, OO: SELF}},
            "prohibited",
            id="art16-prohibited",
        ),
        pytest.param(
            {"art16": Art16Class.WRITTEN_CONSENT, "disclosure": {NP: AUTH, LP: OPEN, OO: AUTH}},
            "written-consent",
            id="art16-written-consent-open-for-legal-person",
        ),
        pytest.param(
            {
                "art16": Art16Class.WRITTEN_CONSENT,
                "disclosure": {NP: OPEN, LP: AUTH, OO: AUTH},
                "open_by_state_provision": "State Council Decree 1",
            },
            "written-consent",
            id="art16-written-consent-open-even-by-state-provision",
        ),
        pytest.param({"disclosure_period_days": 0}, "disclosure period", id="period-zero"),
        pytest.param({"disclosure_period_days": -1}, "disclosure period", id="period-negative"),
        pytest.param({"providers": frozenset()}, "providing unit", id="no-provider"),
    ],
)
def test_item_invariants(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        catalog_item(**changes)


def test_art17_natural_person_open_by_state_provision_is_allowed() -> None:
    item = catalog_item(
        disclosure={NP: OPEN, LP: OPEN, OO: OPEN},
        open_by_state_provision="Opinions of the State Council on joint discipline (2016) 33",
    )
    assert item.level_for(NP) is OPEN
    assert item.level_for(SubjectKind.INDIVIDUAL_BUSINESS) is OPEN  # follows the person's level


@pytest.mark.parametrize(
    "disclosure",
    [{NP: AUTH, LP: AUTH, OO: GOV}, {NP: SELF, LP: AUTH, OO: AUTH}, {NP: GOV, LP: GOV, OO: GOV}],
    ids=["authorized", "self-for-persons", "government"],
)
def test_art16_written_consent_items_at_non_open_levels(
    disclosure: dict[SubjectKind, DisclosureLevel],
) -> None:
    item = catalog_item(art16=Art16Class.WRITTEN_CONSENT, disclosure=disclosure)
    assert OPEN not in item.disclosure.values()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"code": "loan"}, "malformed", id="bad-code"),
        pytest.param({"max_validity_days": 0}, "positive", id="validity"),
        pytest.param({"max_data_range_days": -5}, "positive", id="data-range"),
        pytest.param({"max_uses": 0}, "positive", id="uses"),
    ],
)
def test_purpose_invariants(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "code": "LOAN",
        "title": "Loan",
        "max_validity_days": 90,
        "max_data_range_days": 730,
        "max_uses": 5,
    }
    fields.update(changes)
    with pytest.raises(CatalogError, match=message):
        Purpose(**fields)


# ------------------------------------------------------------------ Catalog.from_document


def catalog_document() -> dict[str, Any]:
    return {
        "version": "2026.1",
        "title": "ignored",
        "prohibited_fields": ["religion", "Ethnic Group"],
        "purposes": [
            {
                "code": "LOAN",
                "title": "Loan",
                "max_validity_days": 90,
                "max_data_range_days": 730,
                "max_uses": 5,
            }
        ],
        "items": [
            {
                "code": "REG.ENTERPRISE",
                "title": "Enterprise registration",
                "category": "registration",
                "info_kind": "public",
                "polarity": "neutral",
                "providers": ["hubei-amr"],
                "schema": {"type": "object"},
                "disclosure": {
                    "natural_person": "self",
                    "legal_person": "open",
                    "other_organisation": "open",
                },
                "disclosure_period_days": 3650,
            },
            {
                "code": "NP.INCOME",
                "title": "Income",
                "category": "market",
                "info_kind": "market",
                "polarity": "positive",
                "providers": ["hubei-tax", "hubei-hrss"],
                "schema": {},
                "disclosure": {
                    "natural_person": "authorized",
                    "legal_person": "government",
                    "other_organisation": "government",
                },
                "disclosure_period_days": 365,
                "art16": "written_consent",
            },
            {
                "code": "LIST.DISCIPLINE",
                "title": "Joint discipline list",
                "category": "joint_discipline_list",
                "info_kind": "public",
                "polarity": "untrustworthy",
                "providers": ["hubei-court"],
                "schema": {},
                "disclosure": {
                    "natural_person": "open",
                    "legal_person": "open",
                    "other_organisation": "open",
                },
                "disclosure_period_days": 1825,
                "open_by_state_provision": "State Council (2016) 33",
            },
        ],
    }


def test_catalog_from_a_good_document() -> None:
    catalog = Catalog.from_document(catalog_document())
    assert catalog.version == "2026.1"
    assert sorted(catalog.items) == ["LIST.DISCIPLINE", "NP.INCOME", "REG.ENTERPRISE"]
    # The regulation's names, and the one this catalog adds, normalised.
    assert catalog.prohibited_fields == art16.PROHIBITED | {"ethnic_group"}
    assert catalog.purposes["LOAN"] == Purpose("LOAN", "Loan", 90, 730, 5)
    reg = catalog.item("REG.ENTERPRISE")
    assert reg is not None
    assert reg.art16 is Art16Class.ORDINARY  # the default
    assert reg.open_by_state_provision == ""
    # An individual business takes the natural person's level unless the catalog names it.
    assert reg.disclosure == {NP: SELF, LP: OPEN, OO: OPEN, SubjectKind.INDIVIDUAL_BUSINESS: SELF}
    income = catalog.item("NP.INCOME")
    assert income is not None
    assert income.art16 is Art16Class.WRITTEN_CONSENT
    assert income.providers == frozenset({"hubei-tax", "hubei-hrss"})
    assert catalog.item("NOPE") is None
    assert [i.code for i in catalog.items_in([Category.MARKET, Category.JUDICIAL])] == ["NP.INCOME"]
    assert catalog.items_in([]) == []


def test_catalog_document_survives_canonical_bytes() -> None:
    doc = catalog_document()
    assert Catalog.from_document(parse_json_object(canonical_bytes(doc))) == (
        Catalog.from_document(doc)
    )


def test_catalog_without_purposes_or_prohibited_fields() -> None:
    doc = catalog_document()
    del doc["purposes"], doc["prohibited_fields"]
    catalog = Catalog.from_document(doc)
    assert catalog.purposes == {}
    # Leaving the list out never turns Art 16 off: the regulation's names are in the code.
    assert catalog.prohibited_fields == art16.PROHIBITED


Edit = Callable[[dict[str, Any]], None]


def _set(path: tuple[Any, ...], value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _del(path: tuple[Any, ...]) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


def _duplicate_first_item(doc: dict[str, Any]) -> None:
    doc["items"].append(copy.deepcopy(doc["items"][0]))


MALFORMED_CATALOGS: list[tuple[str, Edit]] = [
    ("no-version", _del(("version",))),
    ("no-items", _del(("items",))),
    ("items-not-a-list", _set(("items",), 5)),
    ("item-not-an-object", _set(("items", 0), None)),
    ("item-a-string", _set(("items", 0), "REG.ENTERPRISE")),
    ("item-without-code", _del(("items", 0, "code"))),
    ("item-without-schema", _del(("items", 0, "schema"))),
    ("item-without-disclosure", _del(("items", 0, "disclosure"))),
    ("bad-category", _set(("items", 0, "category"), "gossip")),
    ("bad-info-kind", _set(("items", 0, "info_kind"), "rumour")),
    ("bad-polarity", _set(("items", 0, "polarity"), "mixed")),
    ("bad-art16", _set(("items", 0, "art16"), "sensitive")),
    ("art16-prohibited", _set(("items", 0, "art16"), "prohibited")),
    ("bad-level", _set(("items", 0, "disclosure", "legal_person"), "public")),
    ("unknown-subject-kind", _set(("items", 0, "disclosure", "robot"), "open")),
    ("missing-subject-kind", _del(("items", 0, "disclosure", "legal_person"))),
    ("period-not-a-number", _set(("items", 0, "disclosure_period_days"), "ten years")),
    ("period-zero", _set(("items", 0, "disclosure_period_days"), 0)),
    ("providers-null", _set(("items", 0, "providers"), None)),
    ("providers-empty", _set(("items", 0, "providers"), [])),
    ("bad-code", _set(("items", 0, "code"), "reg.enterprise")),
    ("natural-person-open", _set(("items", 0, "disclosure", "natural_person"), "open")),
    ("duplicate-code", _duplicate_first_item),
    ("purpose-unknown-field", _set(("purposes", 0, "colour"), "red")),
    ("purpose-missing-field", _del(("purposes", 0, "max_uses"))),
    ("purpose-zero-limit", _set(("purposes", 0, "max_uses"), 0)),
    ("purpose-not-an-object", _set(("purposes", 0), "LOAN")),
    ("prohibited-fields-not-a-list", _set(("prohibited_fields",), 3)),
    ("prohibited-fields-a-string", _set(("prohibited_fields",), "religion")),
]


@pytest.mark.parametrize(
    "edit", [e for _, e in MALFORMED_CATALOGS], ids=[n for n, _ in MALFORMED_CATALOGS]
)
def test_malformed_catalogs_raise_catalog_error(edit: Edit) -> None:
    doc = catalog_document()
    edit(doc)
    with pytest.raises(CatalogError):
        Catalog.from_document(doc)


def test_malformed_catalog_disclosure_list_raises_catalog_error() -> None:
    doc = catalog_document()
    doc["items"][0]["disclosure"] = ["open", "open", "open"]
    with pytest.raises(CatalogError):
        Catalog.from_document(doc)


def test_malformed_catalog_providers_string_raises_catalog_error() -> None:
    doc = catalog_document()
    doc["items"][0]["providers"] = "hubei-amr"
    with pytest.raises(CatalogError):
        Catalog.from_document(doc)


# ------------------------------------------------------------------ Art 16 names in item schemas


def _schema(**keywords: Any) -> dict[str, Any]:
    return {"type": "object", **keywords}


def _object(**properties: Any) -> dict[str, Any]:
    return _schema(properties=properties)


# (item schema, the field as spelled, where) - each must refuse the whole catalog.
PROHIBITED_SCHEMAS: dict[str, tuple[dict[str, Any], str, str]] = {
    "property-camel-case": (_object(bloodType={}), "bloodType", "$.properties.bloodType"),
    "property-chinese": (_object(宗教信仰={}), "宗教信仰", "$.properties.宗教信仰"),
    "nested-property": (
        _object(notes=_object(medical_records={"type": "string"})),
        "medical_records",
        "$.properties.notes.properties.medical_records",
    ),
    "in-array-items": (
        _object(annex={"type": "array", "items": _object(**{"Blood-Type": {}})}),
        "Blood-Type",
        "$.properties.annex.items.properties.Blood-Type",
    ),
    "pattern-properties-key": (
        _schema(patternProperties={"^blood_?type$": {}}),
        "^blood_?type$",
        "$.patternProperties.^blood_?type$",
    ),
    "required-only": (_schema(required=["name", "血型"]), "血型", "$.required[1]"),
    "dependent-required": (
        _schema(dependentRequired={"case_no": ["fingerprints"]}),
        "fingerprints",
        "$.dependentRequired.case_no[0]",
    ),
    "all-of-subschema": (
        _schema(allOf=[{}, _object(Illness={})]),
        "Illness",
        "$.allOf[1].properties.Illness",
    ),
    "defs-subschema": (
        _schema(**{"$defs": {"person": _object(medicalHistory={})}}),
        "medicalHistory",
        "$.$defs.person.properties.medicalHistory",
    ),
    "property-names-enum": (
        _schema(propertyNames={"enum": ["year", "genes"]}),
        "genes",
        "$.propertyNames.enum[1]",
    ),
    "added-by-the-catalog": (_object(ethnicGroup={}), "ethnicGroup", "$.properties.ethnicGroup"),
}


@pytest.mark.parametrize(
    ("schema", "spelled", "where"), PROHIBITED_SCHEMAS.values(), ids=PROHIBITED_SCHEMAS.keys()
)
def test_an_item_whose_schema_names_prohibited_information_is_refused(
    schema: dict[str, Any], spelled: str, where: str
) -> None:
    doc = catalog_document()
    doc["items"][1]["schema"] = schema
    with pytest.raises(CatalogError) as refused:
        Catalog.from_document(doc)
    assert refused.value.reason == "CATALOG_INVALID"
    message = str(refused.value)
    assert message.startswith("NP.INCOME: ")
    assert f"{spelled!r} at {where}," in message
    assert "Art 16" in message


def test_an_item_whose_code_names_prohibited_information_is_refused() -> None:
    doc = catalog_document()
    doc["items"][0]["code"] = "NP.BLOOD_TYPE"
    with pytest.raises(CatalogError, match=r"NP\.BLOOD_TYPE: the item code names 'blood_type'"):
        Catalog.from_document(doc)


ALLOWED_SCHEMAS = {
    # whole words only: an adjective inside a longer name says what else it is about
    "religious-venue": _object(religious_holiday_closure={"type": "boolean"}),
    "medical-insurance": _object(medicalInsuranceArrears={"type": "number"}),
    "words-containing-a-name": _object(general={}, bloodstock={}, genesis={}),
    # values, titles and descriptions are not field names
    "enum-values": _object(kind={"enum": ["blood type test", "religion"]}),
    "description": _object(note={"description": "never the blood type or religion"}),
    # a definition's name is not a field; its properties are looked at
    "defs-name": _schema(**{"$defs": {"religion": _object(name={})}}),
}


@pytest.mark.parametrize("schema", ALLOWED_SCHEMAS.values(), ids=ALLOWED_SCHEMAS.keys())
def test_an_item_whose_schema_names_nothing_prohibited_loads(schema: dict[str, Any]) -> None:
    doc = catalog_document()
    doc["items"][1]["schema"] = schema
    assert Catalog.from_document(doc).items["NP.INCOME"].schema == schema


def test_a_catalog_built_in_code_cannot_narrow_the_list_either() -> None:
    item = Catalog.from_document(catalog_document()).items["REG.ENTERPRISE"]
    assert Catalog("v", {}, prohibited_fields=frozenset()).prohibited_fields == art16.PROHIBITED
    bad = dataclasses.replace(item, schema=_object(bloodType={}))
    with pytest.raises(CatalogError, match="bloodType"):
        Catalog("v", {bad.code: bad}, prohibited_fields=frozenset())


def test_the_shipped_catalog_loads_and_names_nothing_prohibited() -> None:
    document = json.loads(SHIPPED_CATALOG.read_text())
    catalog = Catalog.from_document(document)
    assert catalog.prohibited_fields == art16.PROHIBITED  # the file adds none
    for item in catalog.items.values():
        assert art16.prohibited_in_schema(item.schema) == []


# ------------------------------------------------------------------ agreements


def agreement(**changes: Any) -> Agreement:
    fields: dict[str, Any] = {
        "id": "agr_1",
        "counterparty": "agency-a",
        "operations": frozenset({Operation.INQUIRY}),
        "items": frozenset({"NP.INCOME"}),
        "categories": frozenset({Category.REGISTRATION, Category.JUDICIAL}),
        "purposes": frozenset({"LOAN", "LEASE"}),
        "levels": frozenset({OPEN, AUTH}),
        "subject_kinds": frozenset({NP, LP}),
        "quotas": Quotas(calls_per_day=1000, records_per_day=50000),
        "valid_from": NOW,
        "valid_until": NOW + timedelta(days=365),
    }
    fields.update(changes)
    return Agreement(**fields)


def test_agreement_document_shape() -> None:
    assert agreement().to_document() == {
        "format": FORMAT,
        "id": "agr_1",
        "counterparty": "agency-a",
        "operations": ["inquiry"],
        "items": ["NP.INCOME"],
        "categories": ["judicial", "registration"],
        "purposes": ["LEASE", "LOAN"],
        "disclosure_levels": ["authorized", "open"],
        "subject_kinds": ["legal_person", "natural_person"],
        "quotas": {"calls_per_day": 1000, "records_per_day": 50000},
        "valid_from": "2025-03-01T12:00:00Z",
        "valid_until": "2026-03-01T12:00:00Z",
    }


def test_signing_bytes_are_the_canonical_document() -> None:
    a = agreement()
    assert a.signing_bytes() == canonical_bytes(a.to_document())
    assert Agreement.from_document(parse_json_object(a.signing_bytes())) == a


def test_signing_bytes_do_not_depend_on_set_order() -> None:
    ops = [Operation.PUSH, Operation.INQUIRY, Operation.BULK_PULL]
    a = agreement(operations=frozenset(ops), purposes=frozenset(["B", "A", "C"]))
    b = agreement(operations=frozenset(reversed(ops)), purposes=frozenset(["C", "B", "A"]))
    assert a.signing_bytes() == b.signing_bytes()


AGREEMENT_CHANGES: list[tuple[str, Any]] = [
    ("id", "agr_2"),
    ("counterparty", "agency-b"),
    ("operations", frozenset({Operation.INQUIRY, Operation.BULK_PULL})),
    ("items", frozenset({"NP.INCOME", "NP.TAX"})),
    ("categories", frozenset({Category.REGISTRATION})),
    ("purposes", frozenset({"LOAN"})),
    ("levels", frozenset({OPEN})),
    ("subject_kinds", frozenset({NP, LP, OO})),
    ("quotas", Quotas(calls_per_day=1001, records_per_day=50000)),
    ("quotas", Quotas(calls_per_day=1000, records_per_day=49999)),
    ("valid_from", NOW - timedelta(seconds=1)),
    ("valid_until", NOW + timedelta(days=366)),
]


def test_agreement_changes_cover_every_field() -> None:
    assert {n for n, _ in AGREEMENT_CHANGES} == {f.name for f in dataclasses.fields(Agreement)}


@pytest.mark.parametrize(
    ("name", "value"),
    AGREEMENT_CHANGES,
    ids=[f"{n}-{i}" for i, (n, _) in enumerate(AGREEMENT_CHANGES)],
)
def test_signing_bytes_change_when_any_field_changes(name: str, value: Any) -> None:
    assert agreement(**{name: value}).signing_bytes() != agreement().signing_bytes()


def test_covers_item_by_code_or_category() -> None:
    a = agreement()
    assert a.covers_item(catalog_item(code="NP.INCOME", category=Category.MARKET))
    assert a.covers_item(catalog_item(code="REG.X", category=Category.REGISTRATION))
    assert not a.covers_item(catalog_item(code="ADM.X", category=Category.ADMINISTRATIVE_PERMIT))


@pytest.mark.parametrize(
    "changes",
    [
        {"valid_until": NOW},
        {"valid_until": NOW - timedelta(days=1)},
        {"quotas": Quotas(0, 10)},
        {"quotas": Quotas(10, 0)},
        {"quotas": Quotas(-1, 10)},
    ],
    ids=["empty-window", "reversed-window", "no-calls", "no-records", "negative-calls"],
)
def test_agreement_invariants(changes: dict[str, Any]) -> None:
    with pytest.raises(DomainError, match=r"agreement ends|quotas") as raised:
        agreement(**changes)
    assert raised.value.reason == "AGREEMENT_INVALID"


def test_naive_times_cannot_be_signed() -> None:
    naive = agreement(valid_from=datetime(2025, 1, 1), valid_until=datetime(2026, 1, 1))
    with pytest.raises(DomainError, match="aware"):
        naive.signing_bytes()


IDS = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
CODES = st.from_regex(r"[A-Z][A-Z0-9_.-]{1,12}", fullmatch=True)
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3))])
AGREEMENTS = st.builds(
    lambda start, length, tz, **kw: Agreement(
        valid_from=start.replace(tzinfo=tz), valid_until=start.replace(tzinfo=tz) + length, **kw
    ),
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
    length=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)),
    tz=OFFSETS,
    id=st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
    counterparty=IDS,
    operations=st.frozensets(st.sampled_from(Operation)),
    items=st.frozensets(CODES, max_size=4),
    categories=st.frozensets(st.sampled_from(Category)),
    purposes=st.frozensets(CODES, max_size=3),
    levels=st.frozensets(st.sampled_from(DisclosureLevel)),
    subject_kinds=st.frozensets(st.sampled_from(SubjectKind)),
    quotas=st.builds(Quotas, st.integers(1, 2**53 - 1), st.integers(1, 2**53 - 1)),
)


@settings(max_examples=100, deadline=None)
@given(AGREEMENTS)
def test_agreement_document_round_trip(a: Agreement) -> None:
    assert Agreement.from_document(a.to_document()) == a
    through_bytes = Agreement.from_document(parse_json_object(a.signing_bytes()))
    assert through_bytes == a
    assert through_bytes.signing_bytes() == a.signing_bytes()


def agreement_document() -> dict[str, Any]:
    return agreement().to_document()


MALFORMED_AGREEMENTS: list[tuple[str, Edit]] = [
    ("wrong-format", _set(("format",), "credit-gateway/agreement/v0")),
    ("no-format", _del(("format",))),
    ("no-id", _del(("id",))),
    ("no-counterparty", _del(("counterparty",))),
    ("no-operations", _del(("operations",))),
    ("unknown-operation", _set(("operations",), ["inquiry", "sell"])),
    ("operations-null", _set(("operations",), None)),
    ("operations-a-number", _set(("operations",), 3)),
    ("unknown-category", _set(("categories",), ["gossip"])),
    ("unknown-level", _set(("disclosure_levels",), ["public"])),
    ("no-levels-key", _del(("disclosure_levels",))),
    ("unknown-subject-kind", _set(("subject_kinds",), ["robot"])),
    ("items-null", _set(("items",), None)),
    ("no-quotas", _del(("quotas",))),
    ("quotas-a-list", _set(("quotas",), [1, 2])),
    ("quota-missing", _del(("quotas", "records_per_day"))),
    ("quota-not-a-number", _set(("quotas", "calls_per_day"), "many")),
    ("quota-zero", _set(("quotas", "calls_per_day"), 0)),
    ("quota-negative", _set(("quotas", "records_per_day"), -1)),
    ("bad-timestamp", _set(("valid_from",), "yesterday")),
    ("timestamp-a-number", _set(("valid_from",), 1735689600)),
    ("no-valid-until", _del(("valid_until",))),
    ("reversed-window", _set(("valid_until",), "2024-01-01T00:00:00Z")),
    ("empty-window", _set(("valid_until",), "2025-03-01T12:00:00Z")),
    ("naive-and-aware-mixed", _set(("valid_until",), "2026-03-01T12:00:00")),
]


@pytest.mark.parametrize(
    "edit", [e for _, e in MALFORMED_AGREEMENTS], ids=[n for n, _ in MALFORMED_AGREEMENTS]
)
def test_malformed_agreements_raise_invalid_argument(edit: Edit) -> None:
    doc = agreement_document()
    edit(doc)
    with pytest.raises(InvalidArgument) as raised:
        Agreement.from_document(doc)
    assert raised.value.reason == "AGREEMENT_MALFORMED"


def _naive_window(doc: dict[str, Any]) -> None:
    doc["valid_from"], doc["valid_until"] = "2025-03-01T12:00:00", "2026-03-01T12:00:00"


MALFORMED_AGREEMENTS: list[Any] = [
    pytest.param(_naive_window, id="naive-timestamps"),
    pytest.param(_set(("items",), "NP.INCOME"), id="items-a-string"),
    pytest.param(_set(("counterparty",), None), id="counterparty-null"),
]


@pytest.mark.parametrize("edit", MALFORMED_AGREEMENTS)
def test_malformed_agreements_are_refused(edit: Edit) -> None:
    doc = agreement_document()
    edit(doc)
    with pytest.raises(InvalidArgument) as raised:
        Agreement.from_document(doc)
    assert raised.value.reason == "AGREEMENT_MALFORMED"


def test_signature_document_round_trip() -> None:
    sig = AgreementSignature(CENTER, "kid-1", "ES256", bytes(range(64)))
    doc = sig.to_document()
    assert doc == {
        "signer": "center",
        "kid": "kid-1",
        "alg": "ES256",
        "sig": b64url(bytes(range(64))),
    }
    assert "=" not in doc["sig"]
    assert AgreementSignature.from_document(doc) == sig


@pytest.mark.parametrize(
    "doc",
    [
        {"kid": "k", "alg": "ES256", "sig": "AA"},
        {"signer": "center", "alg": "ES256", "sig": "AA"},
        {"signer": "center", "kid": "k", "sig": "AA"},
        {"signer": "center", "kid": "k", "alg": "ES256"},
        {"signer": "center", "kid": "k", "alg": "ES256", "sig": "A"},
    ],
    ids=["no-signer", "no-kid", "no-alg", "no-sig", "bad-base64"],
)
def test_malformed_signature_raises_invalid_argument(doc: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument) as raised:
        AgreementSignature.from_document(doc)
    assert raised.value.reason == "AGREEMENT_MALFORMED"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64url(data)
    assert "=" not in text
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert b64url_decode(text) == data


# ------------------------------------------------------------------ participants


def participant(**changes: Any) -> Participant:
    fields: dict[str, Any] = {
        "id": "agency-a",
        "kind": ParticipantKind.CREDIT_AGENCY,
        "org_code": "91350100M000100Y43",
        "name": "Agency A",
        "status": ParticipantStatus.ACTIVE,
        "scopes": frozenset({"inquiry"}),
        "licence": Licence("L-1", valid_until=NOW + timedelta(days=30)),
    }
    fields.update(changes)
    return Participant(**fields)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"licence": Licence("L-1", valid_until=NOW + timedelta(microseconds=1))},
        {"kind": ParticipantKind.GOVERNMENT_DEPARTMENT, "licence": None},
        {"kind": ParticipantKind.INDUSTRY_ASSOCIATION, "licence": None},
        {"kind": ParticipantKind.NATIONAL_PLATFORM, "licence": None},
        # a licence only matters for a credit service establishment
        {"kind": ParticipantKind.PROVIDING_UNIT, "licence": Licence("x", NOW, revoked=True)},
    ],
    ids=["agency", "licence-last-instant", "government", "association", "platform", "unit"],
)
def test_participant_may_act(changes: dict[str, Any]) -> None:
    participant(**changes).ensure_may_act(NOW)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param(
            {"status": ParticipantStatus.SUSPENDED}, "PARTICIPANT_SUSPENDED", id="suspended"
        ),
        pytest.param(
            {
                "status": ParticipantStatus.SUSPENDED,
                "licence": Licence("L-1", NOW - timedelta(days=1), revoked=True),
            },
            "PARTICIPANT_SUSPENDED",
            id="suspended-first",
        ),
        pytest.param(
            {
                "kind": ParticipantKind.GOVERNMENT_DEPARTMENT,
                "licence": None,
                "status": ParticipantStatus.SUSPENDED,
            },
            "PARTICIPANT_SUSPENDED",
            id="suspended-department",
        ),
        pytest.param(
            {"licence": Licence("L-1", NOW + timedelta(days=30), revoked=True)},
            "LICENCE_REVOKED",
            id="licence-revoked",
        ),
        pytest.param(
            {"licence": Licence("L-1", NOW - timedelta(days=1), revoked=True)},
            "LICENCE_REVOKED",
            id="revoked-before-expired",
        ),
        pytest.param({"licence": Licence("L-1", NOW)}, "LICENCE_EXPIRED", id="licence-expired-now"),
        pytest.param(
            {"licence": Licence("L-1", NOW - timedelta(days=1))},
            "LICENCE_EXPIRED",
            id="licence-expired",
        ),
    ],
)
def test_participant_may_not_act(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(PermissionDenied) as raised:
        participant(**changes).ensure_may_act(NOW)
    assert raised.value.reason == reason


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "Agency-A"},
        {"id": "-agency"},
        {"id": ""},
        {"id": "a" * 64},
        {"id": "agency a"},
        {"licence": None},
    ],
    ids=["upper-case", "leading-dash", "empty", "too-long", "space", "agency-without-licence"],
)
def test_participant_invariants(changes: dict[str, Any]) -> None:
    with pytest.raises(DomainError, match=r"participant id|needs a licence") as raised:
        participant(**changes)
    assert raised.value.reason == "PARTICIPANT_INVALID"


def test_participant_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(DomainError, match="participant id"):
        participant(id="agency-a\n")
