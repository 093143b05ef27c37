"""What a batch of record changes lets a platform have: the change feed (SubscribeChanges) and
our delivery to a peer platform both hand over changes nobody asked for one by one. Pure.

Each subject's changed records are one ReleaseRequest to policy.decide, the only release
decision, on the path's channel (EXCHANGE_FEED, EXCHANGE_DELIVERY), under the platform's
agreement. What comes of a change:
  new, corrected            sent with its content if the record is released (with its labels)
  suspended, restored,      sent without content if the record is withheld for what the change
  deleted                   did to it (OBJECTION_SUSPENDED, NOT_IN_SERVICE): an item the
                            platform may not have is never named, not even by a withdrawal
anything else               skipped (an item outside the agreement, a record past its
                            disclosure period, a record changed again since: its later change
                            speaks for it)
A refusal of the whole request (the agreement suspended or expired, the operation not agreed)
refuses the batch: nothing is sent and the cursor does not move past it. A refusal for one
subject (its kind not agreed) skips that subject's changes.

Each subject with anything sent, withheld by the policy or refused is one audit entry
(`entries`), so the subject's ListInquiries shows which platform got what, as for an inquiry;
its withheld count is of the subject's changes not sent.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from credit_gateway.domain.audit import AuditEntry
from credit_gateway.domain.catalog import Catalog
from credit_gateway.domain.decisions import Decision, Reason
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.participants import ParticipantKind
from credit_gateway.domain.policy import (
    AgreementState,
    Channel,
    RecordState,
    ReleaseRequest,
    decide,
)


class ChangeKind(enum.Enum):
    NEW = "new"
    CORRECTED = "corrected"
    SUSPENDED = "suspended"
    RESTORED = "restored"
    DELETED = "deleted"
    EXPIRED = "expired"  # its disclosure period ended, and `maintain` archived it


_WITH_CONTENT = frozenset({ChangeKind.NEW, ChangeKind.CORRECTED})
# A withdrawal is sent only when the record is withheld for what the change did to it.
_WITHDRAWN_FOR: dict[ChangeKind, Reason] = {
    ChangeKind.SUSPENDED: Reason.OBJECTION_SUSPENDED,
    ChangeKind.RESTORED: Reason.NOT_IN_SERVICE,
    ChangeKind.DELETED: Reason.NOT_IN_SERVICE,
    ChangeKind.EXPIRED: Reason.NOT_IN_SERVICE,
}
# Agreement-level refusals (step 2 of the policy) that end the batch rather than skip a subject.
_PER_SUBJECT = frozenset({Reason.SUBJECT_KIND_NOT_AGREED, Reason.NOTHING_REQUESTABLE})


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A change as read: the record in its current state."""

    seq: int
    kind: ChangeKind
    record: RecordState
    subject_id: str
    subject_kind: SubjectKind
    at: datetime
    replaces: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    change: PendingChange
    with_content: bool
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Caller:
    """The platform the batch goes to, on which channel, under which agreement and purpose."""

    channel: Channel
    id: str
    kind: ParticipantKind
    agreement: AgreementState
    purpose: str
    method: str  # the audit entries' method: SubscribeChanges, or Deliver:<peer>


@dataclass(frozen=True, slots=True)
class BatchDecision:
    refusal: Reason | None  # the whole batch refused: nothing goes, the cursor stays
    outgoing: tuple[Outgoing, ...]
    entries: tuple[AuditEntry, ...]  # to commit before anything is sent
    # Records of an item the platform may have that the policy withheld and nothing was sent
    # for, by record id: why (a delivery marks its entry so; the feed skips it).
    withheld: tuple[tuple[str, Reason], ...] = ()


def decide_batch(
    caller: Caller, changes: Sequence[PendingChange], catalog: Catalog, now: datetime
) -> BatchDecision:
    by_subject: dict[str, list[PendingChange]] = {}
    for change in sorted(changes, key=lambda c: c.seq):
        by_subject.setdefault(change.subject_id, []).append(change)
    outgoing: list[Outgoing] = []
    entries: list[AuditEntry] = []
    withheld: list[tuple[str, Reason]] = []
    for subject_id, theirs in by_subject.items():
        decision = decide(_request(caller, subject_id, theirs), catalog, now)
        if decision.refusal is not None and decision.refusal not in _PER_SUBJECT:
            entry = _entry(caller, subject_id, theirs, decision, (), now)
            return BatchDecision(decision.refusal, (), (entry,))
        sent = [] if decision.refusal is not None else _outgoing(theirs, decision)
        went = {o.change.record.id for o in sent}
        held = [
            (w.record_id, w.reason) for w in decision.withheld_records if w.record_id not in went
        ]
        outgoing += sent
        withheld += held
        # A decision about a record of an item the platform may have is on record, sent or not.
        if sent or held or decision.refusal is not None:
            entries.append(_entry(caller, subject_id, theirs, decision, sent, now))
    outgoing.sort(key=lambda o: o.change.seq)
    return BatchDecision(None, tuple(outgoing), tuple(entries), tuple(withheld))


def _request(caller: Caller, subject_id: str, changes: list[PendingChange]) -> ReleaseRequest:
    records = {c.record.id: c.record for c in changes}  # a record changed twice: judged once
    return ReleaseRequest(
        channel=caller.channel,
        caller_id=caller.id,
        caller_kind=caller.kind,
        subject_id=subject_id,
        subject_kind=changes[0].subject_kind,
        purpose=caller.purpose,
        agreement=caller.agreement,
        records=tuple(records.values()),
    )


def _outgoing(changes: list[PendingChange], decision: Decision) -> list[Outgoing]:
    released = {r.record_id: r for r in decision.releases}
    withheld = {w.record_id: w.reason for w in decision.withheld_records}
    sent: list[Outgoing] = []
    for change in changes:
        record_id = change.record.id
        if change.kind in _WITH_CONTENT and record_id in released:
            sent.append(Outgoing(change, True, released[record_id].labels))
        elif (
            change.kind in _WITHDRAWN_FOR and withheld.get(record_id) is _WITHDRAWN_FOR[change.kind]
        ):
            sent.append(Outgoing(change, False))
    return sent


def _entry(
    caller: Caller,
    subject_id: str,
    changes: list[PendingChange],
    decision: Decision,
    sent: Sequence[Outgoing],
    now: datetime,
) -> AuditEntry:
    return AuditEntry(
        id=new_id("inq"),
        at=now,
        caller=caller.id,
        method=caller.method,
        subject_id=subject_id,
        purpose=caller.purpose,
        items=tuple(sorted({c.record.item_code for c in changes})),
        outcome=decision.outcome.value,
        reasons=decision.reasons,
        agreement_id=caller.agreement.agreement.id,
        released_records=tuple(o.change.record.id for o in sent if o.with_content),
        withheld_records=len(changes) - len(sent),
    )
