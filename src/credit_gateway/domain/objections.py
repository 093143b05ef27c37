"""A credit subject's objection to one of its records (Art 29), without I/O: its states, who may
move it where, the input it takes, and the written result the subject fetches.

    pending --(15 days, no answer)--> suspended        the record is withheld everywhere
    pending | suspended --> upheld                     a corrected version replaces the record
    pending | suspended --> rejected                   the record stands, unlabelled again

The policy (domain/policy.py) labels and withholds the record by the clock from its
objection_filed_at, so an objection is suspended from its due_at on, whether or not `maintain`
has yet written "suspended" to its row: `effective_state` answers as the policy enforces.

The rules, each refusal with its reason:
  * a subject objects to its own records only; another's is answered as absent
    (RECORD_NOT_FOUND), and a record out of service cannot be objected to (NOT_IN_SERVICE);
  * one open objection per record at a time (OBJECTION_ALREADY_OPEN);
  * a subject sees its own objections only, a providing unit answers those on the records it
    provided only: any other is absent (OBJECTION_NOT_FOUND);
  * an objection is answered once (OBJECTION_ANSWERED);
  * a correction is of a record in service (NOT_IN_SERVICE), of the same item
    (CORRECTION_OTHER_ITEM) and the same subject (CORRECTION_OTHER_SUBJECT), under a provider
    record id of its own (CORRECTION_ID_TAKEN);
  * texts: the reason 1-2000 characters, the evidence reference 0-256, the answer's reasons
    1-2000, each storable (MISSING_FIELD, FIELD_TOO_LONG, UNSTORABLE_TEXT).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.policy import OBJECTION_RESPONSE_PERIOD
from credit_gateway.domain.records import unstorable
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_REASON = 2000  # the subject's reason and the provider's answer (objections.reason, .answer)
MAX_EVIDENCE = 256  # objections.evidence_reference
MAX_LIST = 100  # objections in one list, by default and at most

FILE_METHOD = "FileObjection"  # the audit entries' methods (domain/audit.RIGHTS_METHODS)
ANSWER_METHOD = "AnswerObjection"
FILED = "FILED"  # the entries' outcomes; a refusal's is audit.REFUSED


class State(enum.Enum):
    PENDING = "pending"
    SUSPENDED = "suspended"
    UPHELD = "upheld"
    REJECTED = "rejected"


OPEN = frozenset({State.PENDING, State.SUSPENDED})
QUEUE_STATES = (State.PENDING, State.SUSPENDED)  # a providing unit's queue, unless it asks


def checked_text(field: str, text: str, *, max_length: int, required: bool = True) -> str:
    """`text` as it is stored, or InvalidArgument naming `field`. Never cut or trimmed: the
    subject's reason is kept exactly as it was written."""
    why = unstorable(text)
    if why is not None:
        raise InvalidArgument.field(
            field, f"no database stores it: {why}", reason="UNSTORABLE_TEXT"
        )
    if required and not text:
        raise InvalidArgument.field(field, "required", reason="MISSING_FIELD")
    if len(text) > max_length:
        raise InvalidArgument.field(
            field, f"at most {max_length} characters", reason="FIELD_TOO_LONG"
        )
    return text


def list_limit(asked: int) -> int:
    """How many objections a list holds: 0 asks for the default; the cap holds for any more."""
    return MAX_LIST if asked <= 0 else min(asked, MAX_LIST)


@dataclass(frozen=True, slots=True)
class ObjectedRecord:
    """The record an objection is about, as read for filing or answering one."""

    id: str
    subject_id: str
    subject_lookup: str
    subject_kind: SubjectKind
    provider_id: str
    provider_record_id: str
    item_code: str
    in_service: bool


@dataclass(frozen=True, slots=True)
class Objection:
    id: str
    record_id: str
    subject_id: str
    provider_id: str
    item_code: str
    provider_record_id: str  # the provider's own id of the record (shown in its queue only)
    state: State
    reason: str
    evidence_reference: str
    filed_at: datetime
    due_at: datetime
    suspended_at: datetime | None = None
    answered_at: datetime | None = None
    answer: str | None = None
    replacement_id: str | None = None
    answer_entry_id: str | None = None  # the answer's audit entry

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    def effective_state(self, now: datetime) -> State:
        """The state the policy enforces: pending past due_at is suspended, written or not."""
        if self.state is State.PENDING and now >= self.due_at:
            return State.SUSPENDED
        return self.state

    def effective_suspended_at(self, now: datetime) -> datetime | None:
        """When its suspension began: as written, else its due_at once passed unanswered."""
        if self.suspended_at is not None:
            return self.suspended_at
        return self.due_at if self.effective_state(now) is State.SUSPENDED else None


# --- filing -----------------------------------------------------------------------------------


def file(
    record: ObjectedRecord | None,
    subject_id: str | None,
    already_open: bool,
    reason: str,
    evidence_reference: str,
    now: datetime,
) -> Objection:
    """The objection `subject_id` files on `record` (as read, None when there is none), or the
    refusal. `already_open`: the record has an open objection."""
    if record is None or subject_id is None or record.subject_id != subject_id:
        raise NotFound("no such record of yours", reason="RECORD_NOT_FOUND")
    if not record.in_service:
        raise FailedPrecondition(
            "the record is out of service (archived): it is no longer released",
            reason="NOT_IN_SERVICE",
        )
    if already_open:
        raise FailedPrecondition(
            "the record has an objection that is not answered yet",
            reason="OBJECTION_ALREADY_OPEN",
        )
    return Objection(
        id=new_id("obj"),
        record_id=record.id,
        subject_id=subject_id,
        provider_id=record.provider_id,
        item_code=record.item_code,
        provider_record_id=record.provider_record_id,
        state=State.PENDING,
        reason=reason,
        evidence_reference=evidence_reference,
        filed_at=now,
        due_at=now + OBJECTION_RESPONSE_PERIOD,  # Art 29 para 2: 15 days
    )


# --- reading ----------------------------------------------------------------------------------


def own(objection: Objection | None, subject_id: str | None) -> Objection:
    """The subject's own objection; another's is answered as absent."""
    if objection is None or subject_id is None or objection.subject_id != subject_id:
        raise NotFound("no such objection of yours", reason="OBJECTION_NOT_FOUND")
    return objection


# --- answering --------------------------------------------------------------------------------


def answerable(objection: Objection | None, provider_id: str) -> Objection:
    """The objection the providing unit may answer: on a record it provided, not answered yet."""
    if objection is None or objection.provider_id != provider_id:
        raise NotFound("no such objection on a record you provided", reason="OBJECTION_NOT_FOUND")
    if not objection.is_open:
        raise FailedPrecondition(
            f"the objection was answered ({objection.state.value}); an answer is final",
            reason="OBJECTION_ANSWERED",
        )
    return objection


def check_correction(
    record: ObjectedRecord, item_code: str, subject_lookup: str, subject_kind: SubjectKind
) -> None:
    """A correction replaces the record, which is in service: the same item, about the same
    subject (by its lookup key and kind, never by the code as written)."""
    if not record.in_service:
        raise FailedPrecondition(
            "the record is out of service (archived): there is nothing to correct",
            reason="NOT_IN_SERVICE",
        )
    if item_code != record.item_code:
        raise InvalidArgument.field(
            "upheld.corrected.item_code",
            f"a correction of a {record.item_code} record is a {record.item_code} record",
            reason="CORRECTION_OTHER_ITEM",
        )
    if subject_lookup != record.subject_lookup or subject_kind is not record.subject_kind:
        raise InvalidArgument.field(
            "upheld.corrected.subject_code",
            "a correction is about the subject of the record it corrects",
            reason="CORRECTION_OTHER_SUBJECT",
        )


def correction_stored(replacement_id: str | None, provider_record_id: str) -> str:
    """The stored correction's id; None: the provider's id for it names a stored record."""
    if replacement_id is None:
        raise InvalidArgument.field(
            "upheld.corrected.provider_record_id",
            f"{provider_record_id!r} names a stored record: a correction is a new record, "
            "under an id of its own (records are not altered, Art 14)",
            reason="CORRECTION_ID_TAKEN",
        )
    return replacement_id


def rejected(objection: Objection, reasons: str, entry_id: str, now: datetime) -> Objection:
    """The objection answered: the record stands as it was."""
    return replace(
        objection,
        state=State.REJECTED,
        suspended_at=objection.effective_suspended_at(now),  # a suspension stays on record
        answered_at=now,
        answer=reasons,
        answer_entry_id=entry_id,
    )


def upheld(
    objection: Objection, reasons: str, replacement_id: str, entry_id: str, now: datetime
) -> Objection:
    """The objection answered: `replacement_id` corrects the record, which leaves service."""
    return replace(
        objection,
        state=State.UPHELD,
        suspended_at=objection.effective_suspended_at(now),
        answered_at=now,
        answer=reasons,
        replacement_id=replacement_id,
        answer_entry_id=entry_id,
    )


def back_on_feed(objection: Objection, now: datetime) -> bool:
    """Whether a rejection brings the record back to the platforms: the feed withheld it (and
    told them to drop it, once `maintain` wrote the suspension) from due_at on."""
    return objection.effective_state(now) is State.SUSPENDED


# --- the written result (Art 29 para 2) ---------------------------------------------------------


def written_result(objection: Objection) -> str | None:
    """What the subject is told once the objection is answered: what was decided, by whom, when
    and why, and the audit entry that records it; None while it is open."""
    o = objection
    if o.is_open or o.answered_at is None:
        return None
    decided = "upheld" if o.state is State.UPHELD else "rejected"
    lines = [
        f"Objection {o.id} to record {o.record_id} ({o.item_code}), filed "
        f"{canonical_timestamp(o.filed_at, 'filed_at')}.",
        f"Decision: {decided} by the providing unit {o.provider_id} on "
        f"{canonical_timestamp(o.answered_at, 'answered_at')}.",
    ]
    if o.state is State.UPHELD:
        lines.append(
            f"The record was corrected: record {o.replacement_id} replaces it; record "
            f"{o.record_id} is archived and no longer released."
        )
    else:
        lines.append(
            f"The record stands as it was: record {o.record_id} is released again, without "
            "the objection label."
        )
    lines.append(f"Reasons: {o.answer}")
    lines.append(
        f"This decision is audit entry {o.answer_entry_id}; "
        "AuditService.GetInclusionProof proves it is in the log."
    )
    return "\n".join(lines)
