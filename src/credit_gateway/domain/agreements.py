"""Data-sharing agreements (Art 20): what a counterparty may do, signed by both sides.

The signed document is JSON: {"agreement": {...terms...}, "signatures": [...]}. What each
signature covers is the canonical bytes (RFC 8785) of the "agreement" member alone, so adding a
signature never changes what the others signed. A signature names its signer ("center" or the
counterparty's participant id), the key id and the algorithm (ES256, raw r||s, base64url).
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.catalog import CatalogItem, Category, DisclosureLevel, string_list
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import DomainError, InvalidArgument

CENTER = "center"
FORMAT = "credit-gateway/agreement/v1"


class Operation(enum.Enum):
    INQUIRY = "inquiry"
    BULK_PULL = "bulk_pull"
    PUSH = "push"
    CHANGE_FEED = "change_feed"
    GOVERNMENT_SHARING = "government_sharing"
    SUBMISSION = "submission"


class AgreementStatus(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class Quotas:
    calls_per_day: int
    records_per_day: int


@dataclass(frozen=True, slots=True)
class Agreement:
    id: str
    counterparty: str
    operations: frozenset[Operation]
    items: frozenset[str]
    categories: frozenset[Category]
    purposes: frozenset[str]
    levels: frozenset[DisclosureLevel]
    subject_kinds: frozenset[SubjectKind]
    quotas: Quotas
    valid_from: datetime
    valid_until: datetime

    def __post_init__(self) -> None:
        if self.valid_until <= self.valid_from:
            raise DomainError("agreement ends before it starts", reason="AGREEMENT_INVALID")
        if self.quotas.calls_per_day <= 0 or self.quotas.records_per_day <= 0:
            raise DomainError("quotas must be positive", reason="AGREEMENT_INVALID")

    def covers_item(self, item: CatalogItem) -> bool:
        return item.code in self.items or item.category in self.categories

    def to_document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "id": self.id,
            "counterparty": self.counterparty,
            "operations": sorted(o.value for o in self.operations),
            "items": sorted(self.items),
            "categories": sorted(c.value for c in self.categories),
            "purposes": sorted(self.purposes),
            "disclosure_levels": sorted(lv.value for lv in self.levels),
            "subject_kinds": sorted(k.value for k in self.subject_kinds),
            "quotas": {
                "calls_per_day": self.quotas.calls_per_day,
                "records_per_day": self.quotas.records_per_day,
            },
            "valid_from": _ts(self.valid_from),
            "valid_until": _ts(self.valid_until),
        }

    def signing_bytes(self) -> bytes:
        return canonical_bytes(self.to_document())

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Agreement:
        try:
            if doc["format"] != FORMAT:
                raise DomainError(f"format must be {FORMAT}")
            for name in ("id", "counterparty"):
                if not isinstance(doc[name], str) or not doc[name]:
                    raise DomainError(f"{name} must be a non-empty string")
            lists = {
                name: string_list(doc[name], name)
                for name in (
                    "operations",
                    "items",
                    "categories",
                    "purposes",
                    "disclosure_levels",
                    "subject_kinds",
                )
            }
            return cls(
                id=doc["id"],
                counterparty=doc["counterparty"],
                operations=frozenset(Operation(o) for o in lists["operations"]),
                items=frozenset(lists["items"]),
                categories=frozenset(Category(c) for c in lists["categories"]),
                purposes=frozenset(lists["purposes"]),
                levels=frozenset(DisclosureLevel(lv) for lv in lists["disclosure_levels"]),
                subject_kinds=frozenset(SubjectKind(k) for k in lists["subject_kinds"]),
                quotas=Quotas(
                    int(doc["quotas"]["calls_per_day"]), int(doc["quotas"]["records_per_day"])
                ),
                valid_from=aware(doc["valid_from"], "valid_from"),
                valid_until=aware(doc["valid_until"], "valid_until"),
            )
        # ValueError from the enums and int(); DomainError from the checks above and the
        # constructor's invariants.
        except (KeyError, TypeError, ValueError, DomainError) as exc:
            raise InvalidArgument(
                f"malformed agreement: {exc}", reason="AGREEMENT_MALFORMED"
            ) from exc


def aware(text: Any, name: str) -> datetime:
    """An RFC 3339 timestamp with its offset; a time without a zone is ambiguous, so refused."""
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        raise DomainError(
            f"{name} is not an ISO 8601 timestamp: {text!r}", reason="TIMESTAMP_INVALID"
        ) from None
    if value.tzinfo is None:
        raise DomainError(f"{name} must carry a UTC offset", reason="TIMESTAMP_INVALID")
    return value


@dataclass(frozen=True, slots=True)
class AgreementSignature:
    signer: str
    kid: str
    alg: str
    value: bytes

    def to_document(self) -> dict[str, str]:
        return {"signer": self.signer, "kid": self.kid, "alg": self.alg, "sig": b64url(self.value)}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> AgreementSignature:
        try:
            return cls(
                str(doc["signer"]), str(doc["kid"]), str(doc["alg"]), b64url_decode(str(doc["sig"]))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"malformed signature: {exc}", reason="AGREEMENT_MALFORMED"
            ) from exc


def _ts(value: datetime) -> str:
    """A UTC time as every signed time is written (docs/canonical.md); drafts are in UTC. A time
    at another offset comes from a document drafted before drafts were converted to UTC: it is
    written back as that document has it, so the signatures already on it still verify."""
    if value.tzinfo is None:
        raise DomainError("agreement times must be aware", reason="TIMESTAMP_INVALID")
    if value.utcoffset() == timedelta(0):
        return canonical_timestamp(value)
    return value.isoformat()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
