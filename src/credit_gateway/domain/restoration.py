"""Records that leave service on a right (Art 30-31), without I/O.

Art 30: a providing unit's credit restoration decision takes an untrustworthiness record out of
service. The decision is the providing unit's signed document (`RestorationDecision`, whose
canonical bytes docs/canonical.md "Restoration decisions" specifies); the checks, in the order
services/archive.py applies them, each a named reason:

  * the decision is well formed (the constructor): provider_record_id present, at most 128
    characters, storable (MISSING_FIELD, FIELD_TOO_LONG, UNSTORABLE_TEXT); decision_number a
    document number, as an Art 22 notice number is (FIELD_TOO_LONG, DECISION_NUMBER_INVALID);
    basis present, at most 2000 characters (MISSING_FIELD, FIELD_TOO_LONG);
  * decided_at is not in the future on the gateway's clock (`check_decided`, INVALID_TIME);
  * the record's item is untrustworthiness information (`check_restorable`, NOT_UNTRUSTWORTHY);
  * decided_at is not before the record's shortest disclosure period has run from when it
    occurred (`check_timing`, RESTORATION_TOO_EARLY; a decision before the record itself
    occurred is that too: the shortest period is never negative).

Art 31: a subject may have its commendations and awards, volunteer service and donation
records deleted on application (`check_deletable`, NOT_DELETABLE_ON_APPLICATION).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.catalog import CatalogItem, Category, Period, Polarity
from credit_gateway.domain.records import MAX_TEXT, notice_number_problem, unstorable
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import FailedPrecondition, InvalidArgument

FORMAT = "credit-gateway/restoration/v1"
MAX_BASIS = 2000  # characters: as an objection's reason
# The transitions' audit entries: their methods (domain/audit.RIGHTS_METHODS) and outcomes.
SUBMIT_RESTORATION, OUTCOME_RESTORED = "SubmitRestoration", "RESTORED"
APPLY_DELETION, OUTCOME_DELETED = "ApplyDeletion", "DELETED"


@dataclass(frozen=True, slots=True)
class RestorationDecision:
    """A credit restoration decision as its providing unit signed it. `provider_id` is the
    caller's participant id (from its token, never from the request)."""

    provider_id: str
    provider_record_id: str
    decision_number: str
    decided_at: datetime
    basis: str

    def __post_init__(self) -> None:
        rid = self.provider_record_id
        if not rid:
            raise InvalidArgument.field("provider_record_id", "required", reason="MISSING_FIELD")
        if len(rid) > MAX_TEXT:
            raise InvalidArgument.field(
                "provider_record_id", f"at most {MAX_TEXT} characters", reason="FIELD_TOO_LONG"
            )
        why = unstorable(rid)
        if why is not None:
            raise InvalidArgument.field(
                "provider_record_id", f"no database stores it: {why}", reason="UNSTORABLE_TEXT"
            )
        if len(self.decision_number) > MAX_TEXT:
            raise InvalidArgument.field(
                "decision_number", f"at most {MAX_TEXT} characters", reason="FIELD_TOO_LONG"
            )
        problem = notice_number_problem(self.decision_number)
        if problem is not None:
            raise InvalidArgument.field(
                "decision_number",
                f"not a document number: {problem}",
                reason="DECISION_NUMBER_INVALID",
            )
        if not self.basis.strip():
            raise InvalidArgument.field("basis", "required", reason="MISSING_FIELD")
        if len(self.basis) > MAX_BASIS:
            raise InvalidArgument.field(
                "basis", f"at most {MAX_BASIS} characters", reason="FIELD_TOO_LONG"
            )
        self.signing_bytes()  # a naive time or a lone surrogate has no canonical form: refused

    def signing_document(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "provider": self.provider_id,
            "provider_record_id": self.provider_record_id,
            "decision_number": self.decision_number,
            "decided_at": canonical_timestamp(self.decided_at, "decided_at"),
            "basis": self.basis,
        }

    def signing_bytes(self) -> bytes:
        return canonical_bytes(self.signing_document())


def check_decided(decision: RestorationDecision, now: datetime) -> None:
    """A decision is taken before it is submitted: no allowance for skew, as for the Art 22
    notice (the gateway's clock is the one that counts)."""
    if decision.decided_at > now:
        raise InvalidArgument.field(
            "decided_at", "lies in the future on the gateway's clock", reason="INVALID_TIME"
        )


def check_restorable(item_code: str, item: CatalogItem | None) -> CatalogItem:
    """The record's catalog item (`item`, None when the catalog in force no longer has it), if
    credit restoration applies to it: untrustworthiness information only (Art 30)."""
    if item is None or item.polarity is not Polarity.UNTRUSTWORTHY:
        raise FailedPrecondition(
            f"{item_code} is not untrustworthiness information: credit restoration does not "
            "apply (Art 30)",
            reason="NOT_UNTRUSTWORTHY",
        )
    return item


def earliest_restoration(occurred_at: datetime, period: Period) -> datetime:
    """The first instant a restoration may end a record's disclosure: its shortest period on."""
    return occurred_at + timedelta(days=period.shortest)


def check_timing(decision: RestorationDecision, occurred_at: datetime, period: Period) -> None:
    """A restoration ends the disclosure period early, but not before its shortest (the
    national practice: a general punishment 3 months, a serious one 1 year)."""
    earliest = earliest_restoration(occurred_at, period)
    if decision.decided_at >= earliest:
        return
    before = (
        "before the record occurred"
        if decision.decided_at < occurred_at
        else f"inside the record's shortest disclosure period ({period.shortest} days)"
    )
    raise FailedPrecondition(
        f"decided_at {canonical_timestamp(decision.decided_at)} is {before}: restoration no "
        f"earlier than {canonical_timestamp(earliest)}",
        reason="RESTORATION_TOO_EARLY",
    )


def disclosure_end(current: datetime, decision: RestorationDecision) -> datetime:
    """The record's disclosure end once restored: the decision ends it early, never later."""
    return min(current, decision.decided_at)


def check_deletable(item_code: str, item: CatalogItem | None) -> None:
    """Art 31: commendations and awards, volunteer service and donations are deleted on the
    subject's application; nothing else is."""
    if item is None or item.category is not Category.COMMENDATION_VOLUNTEER:
        raise FailedPrecondition(
            f"{item_code} is not a commendation, volunteer service or donation record: it is "
            "not deleted on application (Art 31)",
            reason="NOT_DELETABLE_ON_APPLICATION",
        )
