"""The public credit information catalog (Art 9-10) and the purpose list (Art 19).

The catalog file is versioned JSON (see src/credit_gateway/data/catalog.json). Parsing builds
frozen values whose constructors check their invariants, so a bad catalog never loads.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from credit_gateway.domain import art16
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.errors import DomainError


class Category(enum.Enum):
    """Art 10 (1)-(5), plus Art 26-27 lists and market information (Art 3 para 3)."""

    REGISTRATION = "registration"
    ADMINISTRATIVE_PERMIT = "administrative_permit"
    ADMINISTRATIVE_PUNISHMENT = "administrative_punishment"
    ADMINISTRATIVE_COMPULSION = "administrative_compulsion"
    ADMINISTRATIVE_OTHER = "administrative_other"
    JUDICIAL = "judicial"
    COMMENDATION_VOLUNTEER = "commendation_volunteer"
    JOINT_INCENTIVE_LIST = "joint_incentive_list"
    JOINT_DISCIPLINE_LIST = "joint_discipline_list"
    MARKET = "market"
    OTHER = "other"


class InfoKind(enum.Enum):
    PUBLIC = "public"
    MARKET = "market"


class Polarity(enum.Enum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    UNTRUSTWORTHY = "untrustworthy"


class DisclosureLevel(enum.Enum):
    """Art 17-18. Ordered from widest to narrowest audience; SELF is always open to the subject."""

    OPEN = "open"
    AUTHORIZED = "authorized"
    GOVERNMENT = "government"
    SELF = "self"


class Art16Class(enum.Enum):
    ORDINARY = "ordinary"
    WRITTEN_CONSENT = "written_consent"  # income, savings, securities, insurance, real estate, tax
    PROHIBITED = "prohibited"  # religion, genes, fingerprints, blood type, illness, medical history


ITEM_CODE = re.compile(r"[A-Z][A-Z0-9_.-]{1,63}")  # used with fullmatch: no trailing newline
_CODE = ITEM_CODE


class CatalogError(DomainError):
    default_reason = "CATALOG_INVALID"


@dataclass(frozen=True, slots=True)
class Period:
    """A disclosure period's bounds in days from the record's date: disclosed for `longest`;
    a credit restoration may end it early, not before `shortest` (the national practice for
    administrative punishments: general 3 months to 1 year, serious 1 to 3 years)."""

    shortest: int
    longest: int

    def __post_init__(self) -> None:
        if not 0 <= self.shortest <= self.longest or self.longest <= 0:
            raise CatalogError(f"disclosure period {self}: need 0 <= shortest <= longest, > 0")


@dataclass(frozen=True, slots=True)
class PeriodRule:
    """The disclosure period by a field of the record (e.g. `severity`): the field's value names
    the period. A record without the field, or with a value the rule does not name, has the
    item's `disclosure_period_days` (the schema decides which values a record may carry)."""

    field: str
    periods: Mapping[str, Period]

    def __post_init__(self) -> None:
        if not self.field or not self.periods:
            raise CatalogError("a disclosure period rule names a field and its periods")


@dataclass(frozen=True, slots=True)
class CatalogItem:
    code: str
    title: str
    category: Category
    info_kind: InfoKind
    polarity: Polarity
    providers: frozenset[str]
    schema: Mapping[str, Any]
    disclosure: Mapping[SubjectKind, DisclosureLevel]
    disclosure_period_days: int
    art16: Art16Class
    # Art 17 para 2: natural persons' information is OPEN only by a State provision, named here.
    open_by_state_provision: str = ""
    period_rule: PeriodRule | None = None
    # A natural person under 14 (PIPL Art 31): its information is OPEN only by a State
    # provision that names minors, cited here; otherwise the open channel withholds it.
    open_to_minors_by_state_provision: str = ""
    # Any level but OPEN: its records are sealed at rest (open ones are public anyway). Set
    # once here: it is asked for every record stored.
    sealed_at_rest: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not _CODE.fullmatch(self.code):
            raise CatalogError(f"item code {self.code!r} is not of the form [A-Z][A-Z0-9_.-]+")
        if (
            SubjectKind.NATURAL_PERSON in self.disclosure
            and SubjectKind.INDIVIDUAL_BUSINESS not in self.disclosure
        ):
            # A person in business (Civil Code Art 54): unless the catalog says otherwise, its
            # information is disclosed as a natural person's is.
            levels = dict(self.disclosure)
            levels[SubjectKind.INDIVIDUAL_BUSINESS] = levels[SubjectKind.NATURAL_PERSON]
            object.__setattr__(self, "disclosure", levels)  # frozen: set once, while building
        if set(self.disclosure) != set(SubjectKind):
            raise CatalogError(f"{self.code}: disclosure must name every subject kind")
        persons_open = any(
            level is DisclosureLevel.OPEN
            for kind, level in self.disclosure.items()
            if kind.is_person
        )
        if persons_open and not self.open_by_state_provision:
            raise CatalogError(
                f"{self.code}: natural persons' information is OPEN only under a State "
                "provision (Art 17)"
            )
        if self.art16 is Art16Class.PROHIBITED:
            raise CatalogError(f"{self.code}: Art 16 prohibited information cannot be catalogued")
        if (
            self.art16 is Art16Class.WRITTEN_CONSENT
            and DisclosureLevel.OPEN in self.disclosure.values()
        ):
            raise CatalogError(f"{self.code}: Art 16 written-consent information cannot be OPEN")
        if self.disclosure_period_days <= 0:
            raise CatalogError(f"{self.code}: disclosure period must be positive")
        if not self.providers:
            raise CatalogError(f"{self.code}: no authorised providing unit")
        sealed = any(level is not DisclosureLevel.OPEN for level in self.disclosure.values())
        object.__setattr__(self, "sealed_at_rest", sealed)  # frozen: set once, while building

    def level_for(self, kind: SubjectKind) -> DisclosureLevel:
        return self.disclosure[kind]

    def period_for(self, payload: Mapping[str, Any]) -> Period:
        """The disclosure period of a record of this item with `payload`."""
        default = Period(0, self.disclosure_period_days)
        rule = self.period_rule
        if rule is None:
            return default
        value = payload.get(rule.field)
        return rule.periods.get(value, default) if isinstance(value, str) else default

    def disclosure_until(self, payload: Mapping[str, Any], occurred_at: datetime) -> datetime:
        """When a record of this item with `payload`, of `occurred_at`, stops being disclosed."""
        return occurred_at + timedelta(days=self.period_for(payload).longest)


@dataclass(frozen=True, slots=True)
class Purpose:
    code: str
    title: str
    max_validity_days: int
    max_data_range_days: int
    max_uses: int

    def __post_init__(self) -> None:
        if not _CODE.fullmatch(self.code):
            raise CatalogError(f"purpose code {self.code!r} is malformed")
        if min(self.max_validity_days, self.max_data_range_days, self.max_uses) <= 0:
            raise CatalogError(f"purpose {self.code}: limits must be positive")


@dataclass(frozen=True, slots=True)
class Catalog:
    version: str
    items: Mapping[str, CatalogItem]
    purposes: Mapping[str, Purpose] = field(default_factory=dict)
    # Art 16 para 2 (1): names of prohibited information, normalised (domain/art16.py). Always
    # the regulation's list (art16.PROHIBITED), with whatever names the catalog file adds: a
    # catalog can widen it, never narrow it. A record naming one is refused, and so is an item
    # whose schema or code names one.
    prohibited_fields: frozenset[str] = art16.PROHIBITED

    def __post_init__(self) -> None:
        names = art16.PROHIBITED | {art16.normalise(n) for n in self.prohibited_fields}
        object.__setattr__(self, "prohibited_fields", frozenset(names - {""}))
        for item in self.items.values():
            _refuse_prohibited_names(item, self.prohibited_fields)

    def item(self, code: str) -> CatalogItem | None:
        return self.items.get(code)

    def items_in(self, categories: Iterable[Category]) -> list[CatalogItem]:
        wanted = set(categories)
        return [i for i in self.items.values() if i.category in wanted]

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Catalog:
        try:
            version = str(doc["version"])
            items = [_item(raw) for raw in doc["items"]]
            purposes = [Purpose(**raw) for raw in doc.get("purposes", [])]
            prohibited = frozenset(
                string_list(doc.get("prohibited_fields", []), "prohibited_fields")
            )
        except CatalogError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, DomainError) as exc:
            raise CatalogError(f"malformed catalog: {exc!r}") from exc
        by_code = {i.code: i for i in items}
        if len(by_code) != len(items):
            raise CatalogError("duplicate item code")
        return cls(version, by_code, {p.code: p for p in purposes}, prohibited)


def string_list(value: Any, name: str) -> list[str]:
    """A JSON list of strings; a bare string is refused, not read as a list of characters."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DomainError(f"{name} must be a list of strings")
    return value


def _refuse_prohibited_names(item: CatalogItem, prohibited: frozenset[str]) -> None:
    """Art 16 para 2 (1): a catalogued item whose payload would carry prohibited information is
    refused when the catalog loads, not record by record later."""
    named = art16.names_prohibited(item.code, prohibited)
    if named is not None:
        raise CatalogError(
            f"{item.code}: the item code names {named!r}, information Art 16 prohibits"
        )
    found = next(iter(art16.prohibited_in_schema(item.schema, prohibited)), None)
    if found is not None:
        raise CatalogError(
            f"{item.code}: its schema names the field {found.field!r} at {found.path}, which "
            f"reads as {found.reads_as!r}: information Art 16 prohibits aggregating"
        )


def _item(raw: Mapping[str, Any]) -> CatalogItem:
    return CatalogItem(
        code=raw["code"],
        title=raw["title"],
        category=Category(raw["category"]),
        info_kind=InfoKind(raw["info_kind"]),
        polarity=Polarity(raw["polarity"]),
        providers=frozenset(string_list(raw["providers"], "providers")),
        schema=raw["schema"],
        disclosure={SubjectKind(k): DisclosureLevel(v) for k, v in raw["disclosure"].items()},
        disclosure_period_days=int(raw["disclosure_period_days"]),
        art16=Art16Class(raw.get("art16", "ordinary")),
        open_by_state_provision=raw.get("open_by_state_provision", ""),
        period_rule=_period_rule(raw.get("disclosure_period_by")),
        open_to_minors_by_state_provision=raw.get("open_to_minors_by_state_provision", ""),
    )


def _period_rule(raw: Mapping[str, Any] | None) -> PeriodRule | None:
    if raw is None:
        return None
    periods = {
        str(value): Period(int(p["shortest_days"]), int(p["longest_days"]))
        for value, p in raw["periods"].items()
    }
    return PeriodRule(str(raw["field"]), periods)
