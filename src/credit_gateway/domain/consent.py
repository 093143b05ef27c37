"""Written authorizations (Art 19-20): terms, lifecycle and the rules a grant must meet.

Lifecycle: ACTIVE <-> PAUSED; ACTIVE | PAUSED -> REVOKED | EXPIRED | EXHAUSTED. The terminal
states never change again. The artefact a subject consents to (and may sign) is the canonical
bytes of `ConsentTerms.to_document` together with the subject's code; a minor's guardian signs
the same bytes (PIPL Art 31, consent/lifecycle.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from credit_gateway.domain.canonical import canonical_bytes, string_set
from credit_gateway.domain.catalog import Art16Class, Catalog, CatalogItem, Category
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import FailedPrecondition, FieldViolation, InvalidArgument

ARTEFACT_FORMAT = "credit-gateway/consent/v1"
NO_ONWARD_DISCLOSURE = "NO_ONWARD_DISCLOSURE"  # Art 19: not to third parties without consent
AGREED_USE_ONLY = "AGREED_USE_ONLY"  # Art 19: used in the agreed manner
CONDITIONS = (NO_ONWARD_DISCLOSURE, AGREED_USE_ONLY)


class ConsentStatus(enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    REVOKED = "revoked"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"

    @property
    def terminal(self) -> bool:
        return self in (ConsentStatus.REVOKED, ConsentStatus.EXPIRED, ConsentStatus.EXHAUSTED)


class RequestStatus(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


_ALLOWED = {
    ConsentStatus.ACTIVE: {
        ConsentStatus.PAUSED,
        ConsentStatus.REVOKED,
        ConsentStatus.EXPIRED,
        ConsentStatus.EXHAUSTED,
    },
    ConsentStatus.PAUSED: {
        ConsentStatus.ACTIVE,
        ConsentStatus.REVOKED,
        ConsentStatus.EXPIRED,
        ConsentStatus.EXHAUSTED,
    },
}


def transition(current: ConsentStatus, target: ConsentStatus) -> ConsentStatus:
    if target not in _ALLOWED.get(current, set()):
        raise FailedPrecondition(
            f"consent is {current.value}; it cannot become {target.value}",
            reason=f"CONSENT_{current.name}",
        )
    return target


@dataclass(frozen=True, slots=True)
class ConsentTerms:
    grantee: str
    purpose_code: str
    purpose_text: str
    item_codes: frozenset[str]
    categories: frozenset[Category]
    data_from: datetime
    data_to: datetime
    valid_from: datetime
    valid_until: datetime
    max_uses: int

    def to_document(self) -> dict[str, Any]:
        return {
            "grantee": self.grantee,
            "purpose": {"code": self.purpose_code, "text": self.purpose_text},
            # Sets: sorted and each once, whatever order the request listed them in.
            "items": string_set(self.item_codes),
            "categories": string_set(c.value for c in self.categories),
            "data_range": [_ts(self.data_from, "data_from"), _ts(self.data_to, "data_to")],
            "validity": [_ts(self.valid_from, "valid_from"), _ts(self.valid_until, "valid_until")],
            "max_uses": self.max_uses,
            "conditions": list(CONDITIONS),
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ConsentTerms:
        return cls(
            grantee=doc["grantee"],
            purpose_code=doc["purpose"]["code"],
            purpose_text=doc["purpose"]["text"],
            item_codes=frozenset(doc["items"]),
            categories=frozenset(Category(c) for c in doc["categories"]),
            data_from=datetime.fromisoformat(doc["data_range"][0]),
            data_to=datetime.fromisoformat(doc["data_range"][1]),
            valid_from=datetime.fromisoformat(doc["validity"][0]),
            valid_until=datetime.fromisoformat(doc["validity"][1]),
            max_uses=int(doc["max_uses"]),
        )

    def covers(self, item: CatalogItem) -> bool:
        """Art 16 written-consent items count only when named one by one."""
        if item.code in self.item_codes:
            return True
        return item.art16 is not Art16Class.WRITTEN_CONSENT and item.category in self.categories

    def validate(self, catalog: Catalog, now: datetime) -> None:
        """The rules a grant (or a request) must meet; InvalidArgument names each one broken."""
        problems: list[FieldViolation] = []
        naive = [
            n
            for n in ("data_from", "data_to", "valid_from", "valid_until")
            if getattr(self, n).tzinfo is None
        ]
        if naive:
            raise InvalidArgument(
                "consent terms are not acceptable",
                reason="CONSENT_TERMS_INVALID",
                violations=tuple(FieldViolation(f"terms.{n}", "needs a UTC offset") for n in naive),
            )
        purpose = catalog.purposes.get(self.purpose_code)
        if purpose is None:
            problems.append(
                FieldViolation(
                    "terms.purpose_code", f"{self.purpose_code!r} is not on the purpose list"
                )
            )
        if not self.item_codes and not self.categories:
            problems.append(
                FieldViolation("terms.item_codes", "name at least one item or category")
            )
        for code in sorted(self.item_codes):
            if catalog.item(code) is None:
                problems.append(
                    FieldViolation("terms.item_codes", f"{code!r} is not in the catalog")
                )
        if self.data_to <= self.data_from:
            problems.append(FieldViolation("terms.data_to", "data range ends before it starts"))
        if self.valid_until <= self.valid_from:
            problems.append(FieldViolation("terms.valid_until", "validity ends before it starts"))
        if self.valid_until <= now:
            problems.append(FieldViolation("terms.valid_until", "validity has already ended"))
        if self.max_uses <= 0:
            problems.append(FieldViolation("terms.max_uses", "must be at least 1"))
        if purpose is not None:
            if self.valid_until - self.valid_from > timedelta(days=purpose.max_validity_days):
                problems.append(
                    FieldViolation(
                        "terms.valid_until",
                        f"purpose {purpose.code} allows at most {purpose.max_validity_days} days",
                    )
                )
            if self.data_to - self.data_from > timedelta(days=purpose.max_data_range_days):
                problems.append(
                    FieldViolation(
                        "terms.data_from",
                        f"purpose {purpose.code} allows a data range of at most "
                        f"{purpose.max_data_range_days} days",
                    )
                )
            if self.max_uses > purpose.max_uses:
                problems.append(
                    FieldViolation(
                        "terms.max_uses",
                        f"purpose {purpose.code} allows at most {purpose.max_uses} uses",
                    )
                )
        if problems:
            raise InvalidArgument(
                "consent terms are not acceptable",
                reason="CONSENT_TERMS_INVALID",
                violations=tuple(problems),
            )


@dataclass(frozen=True, slots=True)
class Consent:
    id: str
    subject_id: str
    terms: ConsentTerms
    status: ConsentStatus
    uses: int
    granted_at: datetime
    status_changed_at: datetime
    evidence: str

    def effective_status(self, now: datetime) -> ConsentStatus:
        """The status a reader sees at `now`: a lapsed window or spent uses end an open consent."""
        if self.status.terminal:
            return self.status
        if now >= self.terms.valid_until:
            return ConsentStatus.EXPIRED
        if self.uses >= self.terms.max_uses:
            return ConsentStatus.EXHAUSTED
        return self.status


def artefact_bytes(subject_code: str, terms: ConsentTerms) -> bytes:
    """What the subject consents to, and signs where it has a registered key: computable by the
    subject before the gateway assigns the consent an id (docs/canonical.md)."""
    return canonical_bytes(
        {"format": ARTEFACT_FORMAT, "subject": subject_code, "terms": terms.to_document()}
    )


def _ts(value: datetime, name: str) -> str:
    return canonical_timestamp(value, f"terms.{name}")


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    id: str
    subject_id: str
    terms: ConsentTerms
    status: RequestStatus
    requested_at: datetime
    consent_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One transition of a consent or a consent request, in the order the gateway made them."""

    seq: int
    consent_id: str | None
    request_id: str | None
    from_status: str | None
    to_status: str
    at: datetime
