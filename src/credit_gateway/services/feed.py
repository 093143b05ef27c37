"""The platforms' pull and change feed (ExchangeService.PullRecords, SubscribeChanges), as the
gateway runs them. No protobuf here: the servicer (adapters/grpc/exchange_feed.py) converts.

A pull is one release per subject through the release path (services/release.py) on
Channel.EXCHANGE_PULL: the policy, the standing check, the quotas and the audit entry in the
release's transaction are that path's; `Pull` only builds the inquiries and tells a refusal of
one subject (the stream goes on) from a refusal of the caller or its agreement (it ends).

The feed (`FeedService`) reads changes after a subscriber's seq, decides them with
domain/exchange.decide_batch and commits the batch's audit entries in the transaction that read
them, before anything is sent (`batch`). Its cursor is domain/cursor.py's, under a key derived
from the master key (CURSOR_KEY_LABEL), so it resumes on any replica. `prune` drops changes past
feed_retention_days and raises the floor: an older cursor is then CURSOR_EXPIRED.

FeedService's methods are blocking (one transaction each): the server runs them on its stream
threads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import feed as feed_store
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.crypto.envelope import Envelope
from credit_gateway.domain.audit import OPERATOR, AuditEntry, call_refusal, decision_entry
from credit_gateway.domain.catalog import Catalog
from credit_gateway.domain.cursor import CURSOR_KEY_LABEL, decode_cursor, encode_cursor
from credit_gateway.domain.decisions import Decision, Reason
from credit_gateway.domain.exchange import Caller, ChangeKind, Outgoing, decide_batch
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.participants import ParticipantKind, Standing
from credit_gateway.domain.policy import AgreementState, Channel, ReleaseRequest, decide
from credit_gateway.domain.release import Released, check_items, open_record
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
)
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.release import Inquiry, InquiryResult, InquiryService

PULL_METHOD = "PullRecords"
FEED_METHOD = "SubscribeChanges"

# --------------------------------------------------------------------------- pull

# Refusals that are one subject's alone: the stream goes on to the next. A bad code (any
# InvalidArgument), the subject's kind not agreed, the day's quota, or items that none may be
# had of this subject (their level depends on its kind). Any other refusal, of the caller (its
# kind, its standing) or of its agreement, would refuse every later subject alike: the stream
# ends with the first one's status, once it is on record (and so does an unknown one).
SUBJECT_REFUSALS = frozenset(
    {
        Reason.SUBJECT_KIND_NOT_AGREED,
        Reason.QUOTA_CALLS_EXHAUSTED,
        Reason.NOT_IN_CATALOG,
        Reason.ITEM_NOT_AGREED,
        Reason.LEVEL_NOT_AGREED,
        Reason.NOT_DISCLOSABLE_ON_CHANNEL,
        Reason.NOT_PUBLIC_CREDIT_INFORMATION,
        Reason.WRITTEN_CONSENT_REQUIRED,
    }
)
_REFUSED = (InvalidArgument, PermissionDenied, ResourceExhausted)


def subject_refusal(error: Exception) -> bool:
    if isinstance(error, InvalidArgument):
        return True
    return isinstance(error, _REFUSED) and error.reason in SUBJECT_REFUSALS


@dataclass(frozen=True, slots=True)
class PullAnswer:
    """One subject of a pull: its release, or the refusal of this subject alone."""

    index: int
    subject_code: str
    result: InquiryResult | None
    refusal: InvalidArgument | PermissionDenied | ResourceExhausted | None = None


class Pull:
    def __init__(self, inquiry: InquiryService, blocking: Blocking, max_subjects: int) -> None:
        self.inquiry, self.blocking, self.max_subjects = inquiry, blocking, max_subjects

    def check_count(self, subjects: int) -> None:
        if subjects > self.max_subjects:
            raise InvalidArgument.field(
                "subjects",
                f"at most {self.max_subjects} subjects a call",
                reason="TOO_MANY_SUBJECTS",
            )
        if not subjects:
            raise InvalidArgument.field("subjects", "at least one subject", reason="MISSING_FIELD")

    def inquiries(
        self,
        standing: Standing,
        agreement_id: str,
        purpose: str,
        subjects: Sequence[tuple[str, SubjectKind | None]],
        item_codes: tuple[str, ...],
    ) -> list[Inquiry]:
        """The pull's releases, one per subject, checked before any is made: a bad request
        releases nothing and writes nothing."""
        self.check_count(len(subjects))
        check_items(item_codes)
        return [
            # The caller's standing (and so its kind) is read in each release's transaction.
            Inquiry(
                Channel.EXCHANGE_PULL,
                standing.participant_id,
                None,
                PULL_METHOD,
                code,
                purpose,
                item_codes,
                agreement_id,
                subject_kind=kind,
                standing=standing,
            )
            for code, kind in subjects
        ]

    async def answers(self, inquiries: Sequence[Inquiry]) -> AsyncIterator[PullAnswer]:
        """Each subject's answer in order, each released (or refused) and on record before it
        is yielded; a refusal of the whole pull is raised after its entry is committed."""
        for index, inquiry in enumerate(inquiries):
            try:
                result = await self._release(inquiry)
            except _REFUSED as refused:
                if not subject_refusal(refused):
                    raise
                yield PullAnswer(index, inquiry.subject_code, None, refused)
            else:
                yield PullAnswer(index, inquiry.subject_code, result)

    async def _release(self, inquiry: Inquiry) -> InquiryResult:
        # As InquiryService's callers do: SQLite on the loop, else (or when another process
        # holds the writer) on a stream thread, never the unary calls' pool.
        result = await self.inquiry.release_on_loop(inquiry)
        if result is None:
            result = await self.blocking.stream(self.inquiry.release, inquiry)
        return result


# --------------------------------------------------------------------------- feed


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: str
    kind: ParticipantKind
    agreement_id: str
    purpose: str


@dataclass(frozen=True, slots=True)
class SentChange:
    """A change as it leaves: `record` (opened) for NEW and CORRECTED, else None."""

    kind: ChangeKind
    record_id: str
    item_code: str
    subject_code: str
    at: datetime
    replaces: str | None
    record: Released | None


@dataclass(frozen=True, slots=True)
class Batch:
    seq: int  # the last change read: the cursor moves over what was skipped too
    changes: tuple[SentChange, ...]
    inquiry_ids: tuple[str, ...]


def expired() -> FailedPrecondition:
    return FailedPrecondition(
        "the cursor is older than the changes the gateway keeps: resynchronise with "
        "PullRecords and subscribe with an empty cursor",
        reason="CURSOR_EXPIRED",
    )


class FeedService:
    PRUNE_CHUNK = 10_000  # changes deleted in one transaction (feed_head's lock is held)

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.db = gateway.db
        self._cursor_key = gateway.master.derive(CURSOR_KEY_LABEL)
        self._mac_key = gateway.audit.mac_key

    def cursor(self, agreement_id: str, seq: int) -> str:
        return encode_cursor(self._cursor_key, agreement_id, seq)

    def head_seq(self) -> int:
        with self.db.transaction(write=False) as session:
            return feed_store.head(session)[1]

    def start(self, subscriber: Subscriber, cursor: str) -> int:
        """The seq to read after: the cursor's, or (empty) the head's now. The subscriber must
        hold the agreement (the policy's reasons, on record when refused)."""
        # A cursor that does not verify is refused before anything is read or written.
        seq = decode_cursor(self._cursor_key, subscriber.agreement_id, cursor) if cursor else None
        now = self.gateway.clock()
        catalog = self.gateway.catalog.get()
        with self.db.transaction() as session:
            state = agreement_store.agreement_state(session, subscriber.agreement_id)
            decision = admission(subscriber, state, catalog, now)
            if decision.refusal is not None:
                audit_store.append(session, self._mac_key, refusal_entry(subscriber, decision, now))
            floor, head = feed_store.head(session)
        decision.raise_if_refused()  # after the commit: the refusal is on record
        if seq is None:
            return head
        if seq > head:  # never given: a cursor names a change that was made
            raise InvalidArgument.field("cursor", "beyond the feed's head", reason="CURSOR_INVALID")
        if seq < floor:
            raise expired()
        return seq

    def batch(self, subscriber: Subscriber, seq: int, limit: int) -> Batch | None:
        """Up to `limit` changes after `seq`, decided, their entries committed; None when there
        is none. A refusal of the batch as a whole is committed, then raised (the cursor does
        not move past it)."""
        now = self.gateway.clock()
        catalog = self.gateway.catalog.get()
        envelope = self.gateway.envelope
        with self.db.transaction() as session:
            found = feed_store.changes_after(session, seq, limit)
            # Read after the changes: a prune that committed before they were read shows here.
            if seq < feed_store.head(session)[0]:
                raise expired()
            if not found:
                return None
            state = agreement_store.agreement_state(session, subscriber.agreement_id)
            sent: tuple[SentChange, ...] = ()
            if state is None:  # agreements are never deleted; fail closed all the same
                decision = admission(subscriber, state, catalog, now)
                refusal = decision.refusal
                entries: tuple[AuditEntry, ...] = (refusal_entry(subscriber, decision, now),)
            else:
                caller = Caller(
                    Channel.EXCHANGE_FEED,
                    subscriber.id,
                    subscriber.kind,
                    state,
                    subscriber.purpose,
                    FEED_METHOD,
                )
                # A platform's own pushes are not sent back to it: it holds them already.
                theirs = [c for c, held in found if held.stored.provider_id != subscriber.id]
                decided = decide_batch(caller, theirs, catalog, now)
                refusal, entries = decided.refusal, decided.entries
                held = {h.stored.id: h for _, h in found}
                codes = record_store.subject_codes(
                    session, envelope, {o.change.subject_id for o in decided.outgoing}
                )
                sent = tuple(
                    _sent(o, held[o.change.record.id], codes, envelope) for o in decided.outgoing
                )
            for entry in entries:
                audit_store.append(session, self._mac_key, entry)
        if refusal is not None:
            Decision(refusal).raise_if_refused()
        return Batch(found[-1][0].seq, sent, tuple(e.id for e in entries))

    def prune(self) -> tuple[int, int]:
        """Deletes the changes older than feed_retention_days and raises the floor over them:
        (the floor now, how many were deleted). For a periodic task or the CLI."""
        before = self.gateway.clock() - timedelta(days=self.gateway.settings.feed_retention_days)
        return self.prune_before(before)

    def prune_before(self, before: datetime) -> tuple[int, int]:
        """As prune, before ``before``; the prune is on record (in its last transaction) when
        it deleted anything."""
        deleted = 0
        while True:
            with self.db.transaction() as session:
                floor, done = feed_store.prune(session, before, self.PRUNE_CHUNK)
                deleted += done
                if done < self.PRUNE_CHUNK and deleted:
                    items = (canonical_timestamp(before, "before"), str(deleted))
                    entry = decision_entry(
                        at=self.gateway.clock(), caller=OPERATOR, method="feed.prune",
                        outcome="PRUNED", items=items,
                    )  # fmt: skip
                    audit_store.append(session, self._mac_key, entry)
            if done < self.PRUNE_CHUNK:
                return floor, deleted


def admission(
    subscriber: Subscriber, state: AgreementState | None, catalog: Catalog, now: datetime
) -> Decision:
    """Whether the subscriber may follow the feed under the agreement at all, asked of the
    policy (steps 1-2 and whether the agreement covers anything): a request with no records,
    about a subject of a kind the agreement names (kinds are judged per subject later)."""
    kinds = sorted(state.agreement.subject_kinds, key=lambda k: k.value) if state else []
    request = ReleaseRequest(
        channel=Channel.EXCHANGE_FEED,
        caller_id=subscriber.id,
        caller_kind=subscriber.kind,
        subject_id="",
        subject_kind=kinds[0] if kinds else SubjectKind.LEGAL_PERSON,
        purpose=subscriber.purpose,
        agreement=state,
    )
    return decide(request, catalog, now)


def refusal_entry(subscriber: Subscriber, decision: Decision, now: datetime) -> AuditEntry:
    return call_refusal(
        at=now,
        caller=subscriber.id,
        method=FEED_METHOD,
        outcome=decision.outcome.value,
        reasons=decision.reasons,
        agreement_id=subscriber.agreement_id,
        purpose=subscriber.purpose,
        id_prefix="inq",  # as the feed's releases: its entries are inquiries (Art 19)
    )


def _sent(
    outgoing: Outgoing, held: feed_store.HeldRecord, codes: dict[str, str], envelope: Envelope
) -> SentChange:
    change = outgoing.change
    record = None
    if outgoing.with_content:
        # Opened in the batch's transaction: a payload that does not open sends nothing.
        opened = open_record(envelope, held.stored, outgoing.labels)
        record = dataclasses.replace(opened, provider_id=held.provider_code)
    return SentChange(
        change.kind,
        change.record.id,
        change.record.item_code,
        codes[change.subject_id],
        change.at,
        change.replaces,
        record,
    )
