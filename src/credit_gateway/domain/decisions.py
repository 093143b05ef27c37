"""A release decision: a frozen value with every reason named, written to the audit log as is."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from credit_gateway.errors import PermissionDenied, ResourceExhausted


class Reason(enum.StrEnum):
    # request-level: nothing is released
    CALLER_KIND_NOT_ALLOWED = "CALLER_KIND_NOT_ALLOWED"
    AGREEMENT_REQUIRED = "AGREEMENT_REQUIRED"
    AGREEMENT_OTHER_PARTY = "AGREEMENT_OTHER_PARTY"
    AGREEMENT_SUSPENDED = "AGREEMENT_SUSPENDED"
    AGREEMENT_EXPIRED = "AGREEMENT_EXPIRED"
    AGREEMENT_NOT_YET_VALID = "AGREEMENT_NOT_YET_VALID"
    OPERATION_NOT_AGREED = "OPERATION_NOT_AGREED"
    PURPOSE_NOT_AGREED = "PURPOSE_NOT_AGREED"
    SUBJECT_KIND_NOT_AGREED = "SUBJECT_KIND_NOT_AGREED"
    QUOTA_CALLS_EXHAUSTED = "QUOTA_CALLS_EXHAUSTED"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    CONSENT_OTHER_GRANTEE = "CONSENT_OTHER_GRANTEE"
    CONSENT_OTHER_SUBJECT = "CONSENT_OTHER_SUBJECT"
    CONSENT_REVOKED = "CONSENT_REVOKED"
    CONSENT_PAUSED = "CONSENT_PAUSED"
    CONSENT_EXPIRED = "CONSENT_EXPIRED"
    CONSENT_NOT_YET_VALID = "CONSENT_NOT_YET_VALID"
    CONSENT_EXHAUSTED = "CONSENT_EXHAUSTED"
    PURPOSE_NOT_CONSENTED = "PURPOSE_NOT_CONSENTED"
    CONSENT_TOKEN_INVALID = "CONSENT_TOKEN_INVALID"  # noqa: S105 - a reason, not a secret
    NOTHING_REQUESTABLE = "NOTHING_REQUESTABLE"
    # item-level: says nothing about whether records exist
    NOT_IN_CATALOG = "NOT_IN_CATALOG"
    ITEM_NOT_AGREED = "ITEM_NOT_AGREED"
    LEVEL_NOT_AGREED = "LEVEL_NOT_AGREED"
    NOT_DISCLOSABLE_ON_CHANNEL = "NOT_DISCLOSABLE_ON_CHANNEL"
    ITEM_NOT_CONSENTED = "ITEM_NOT_CONSENTED"
    # government sharing (Art 20 para 1) is of public credit information alone: not market
    # information (Art 3), nor what Art 16 para 2 (2) releases only with written consent
    NOT_PUBLIC_CREDIT_INFORMATION = "NOT_PUBLIC_CREDIT_INFORMATION"
    WRITTEN_CONSENT_REQUIRED = "WRITTEN_CONSENT_REQUIRED"
    # a natural person under 14 (PIPL Art 31): the open channel releases its information only
    # where the catalog item cites a State provision for it
    MINOR_NOT_OPEN = "MINOR_NOT_OPEN"
    # record-level
    DISCLOSURE_PERIOD_ENDED = "DISCLOSURE_PERIOD_ENDED"
    OUTSIDE_CONSENT_DATA_RANGE = "OUTSIDE_CONSENT_DATA_RANGE"
    OBJECTION_SUSPENDED = "OBJECTION_SUSPENDED"
    NOT_IN_SERVICE = "NOT_IN_SERVICE"
    QUOTA_RECORDS_EXHAUSTED = "QUOTA_RECORDS_EXHAUSTED"


QUOTA_REASONS = frozenset({Reason.QUOTA_CALLS_EXHAUSTED})
LABEL_OBJECTION_PENDING = "OBJECTION_PENDING"  # Art 29: labelled at once while under objection


class Outcome(enum.StrEnum):
    RELEASED = "RELEASED"  # everything decided was released
    PARTIAL = "PARTIAL"  # something released, something withheld
    WITHHELD = "WITHHELD"  # the request was allowed, but every record or item was withheld
    REFUSED = "REFUSED"  # the request itself was refused


@dataclass(frozen=True, slots=True)
class RecordRelease:
    record_id: str
    item_code: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordWithheld:
    record_id: str
    item_code: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class ItemWithheld:
    item_code: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Decision:
    refusal: Reason | None
    releases: tuple[RecordRelease, ...] = ()
    withheld_records: tuple[RecordWithheld, ...] = ()
    withheld_items: tuple[ItemWithheld, ...] = ()
    uses_consent: bool = False  # count one use of the consent when this decision is committed

    @property
    def outcome(self) -> Outcome:
        if self.refusal is not None:
            return Outcome.REFUSED
        if not self.releases:
            return Outcome.WITHHELD
        return (
            Outcome.PARTIAL if (self.withheld_items or self.withheld_records) else Outcome.RELEASED
        )

    @property
    def reasons(self) -> tuple[str, ...]:
        named = [self.refusal] if self.refusal else []
        named += [w.reason for w in self.withheld_items] + [w.reason for w in self.withheld_records]
        return tuple(dict.fromkeys(named))

    def raise_if_refused(self) -> None:
        """The guard every release path calls: a refusal cannot be mistaken for a release."""
        if self.refusal is None:
            return
        if self.refusal in QUOTA_REASONS:
            raise ResourceExhausted(f"refused: {self.refusal.value}", reason=self.refusal.value)
        raise PermissionDenied(f"refused: {self.refusal.value}", reason=self.refusal.value)
