"""Objections (Art 29), as the gateway runs them: the rules are domain/objections.py, the rows
adapters/storage/objections.py; this module reads, decides and writes in one transaction per
call. No protobuf here: the servicer (adapters/grpc/objections.py) converts.

Filing: the objection (pending), the record's objection_filed_at (from which every read path
labels it, and withholds it 15 days on) and the audit entry FileObjection, in one transaction.

Answering, in one transaction with the audit entry AnswerObjection:
  rejected  the answer; the record no longer labelled; if the objection was suspended, a feed
            change "new" for the record, which the platforms dropped or never got meanwhile;
  upheld    the corrected record, checked exactly as a submission (services/submission.py, by
            the same SubmissionService), of the same item and subject, under a provider id of
            its own, stored replacing the original; the original archived (CORRECTED); the
            outbox entries a submitted record gets; the feed change "corrected" (replaces the
            original); the answer.

A refusal decided on what was read (a record or objection not the caller's, out of service,
already objected to or answered, a correction of another item or subject) rolls the call back
and is recorded as an entry of its own (outcome REFUSED), as consent/lifecycle.py records its
refusals; a malformed request (a text out of bounds, a corrected record the submission's checks
reject) is refused before anything is read, and is not a decision about anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from credit_gateway.adapters.storage import audit as audit_store
from credit_gateway.adapters.storage import feed as feed_store
from credit_gateway.adapters.storage import objections as store
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.domain import objections as rules
from credit_gateway.domain.audit import SELF
from credit_gateway.domain.exchange import ChangeKind
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.objections import Objection, State
from credit_gateway.domain.release import parse_subject
from credit_gateway.errors import InvalidArgument
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.decided import Seen, refusals_on_record
from credit_gateway.services.submission import Checked, Incoming, SubmissionService

CORRECTED_FIELD = "upheld.corrected"  # where the request holds the corrected record


class ObjectionService:
    def __init__(self, gateway: Gateway, submission: SubmissionService) -> None:
        self.gateway = gateway
        self.submission = submission  # the submission's checks, for a corrected record

    # --- the subject's side ----------------------------------------------------------------
    def file(
        self, subject_code: str, record_id: str, reason: str, evidence_reference: str
    ) -> Objection:
        reason = rules.checked_text("reason", reason, max_length=rules.MAX_REASON)
        evidence = rules.checked_text(
            "evidence_reference", evidence_reference, max_length=rules.MAX_EVIDENCE, required=False
        )
        gw = self.gateway
        now = gw.clock()
        lookup = self._lookup(subject_code, now)
        seen = Seen(rules.FILE_METHOD, SELF, now)
        with refusals_on_record(gw, seen), gw.db.transaction() as session:
            seen.subject_id = _person(record_store.find_subject(session, lookup))
            record = store.objected_record(session, record_id)
            if record is not None and record.subject_id == seen.subject_id:
                seen.items = (record.item_code,)  # the subject's own: its item may be named
            already_open = bool(seen.items) and store.has_open(session, record_id)
            objection = rules.file(record, seen.subject_id, already_open, reason, evidence, now)
            store.add(session, objection)
            audit_store.append(session, gw.audit.mac_key, seen.entry(rules.FILED))
        return objection

    def get(self, subject_code: str, objection_id: str) -> Objection:
        lookup = self._lookup(subject_code, self.gateway.clock())
        with self.gateway.db.transaction(write=False) as session:
            subject_id = _person(record_store.find_subject(session, lookup))
            return rules.own(store.get(session, objection_id), subject_id)

    def list_own(self, subject_code: str, states: Sequence[State], limit: int) -> list[Objection]:
        now = self.gateway.clock()
        lookup = self._lookup(subject_code, now)
        with self.gateway.db.transaction(write=False) as session:
            subject_id = _person(record_store.find_subject(session, lookup))
            if subject_id is None:
                return []
            return store.of_subject(session, subject_id, states, now, rules.list_limit(limit))

    # --- the providing unit's side ---------------------------------------------------------
    def queue(self, provider_id: str, states: Sequence[State], limit: int) -> list[Objection]:
        now = self.gateway.clock()
        with self.gateway.db.transaction(write=False) as session:
            return store.queue(
                session, provider_id, states or rules.QUEUE_STATES, now, rules.list_limit(limit)
            )

    def answer(
        self, provider_id: str, objection_id: str, reasons: str, corrected: Incoming | None
    ) -> Objection:
        """Rejected when `corrected` is None, else upheld with it."""
        field = "rejected.reasons" if corrected is None else "upheld.reasons"
        reasons = rules.checked_text(field, reasons, max_length=rules.MAX_REASON)
        checked = None if corrected is None else self._checked(provider_id, corrected)
        gw = self.gateway
        now = gw.clock()
        seen = Seen(rules.ANSWER_METHOD, provider_id, now)
        with refusals_on_record(gw, seen), gw.db.transaction() as session:
            found = store.get(session, objection_id, lock=True)
            if found is not None:
                seen.subject_id, seen.items = found.subject_id, (found.item_code,)
            objection = rules.answerable(found, provider_id)
            outcome = State.REJECTED if checked is None else State.UPHELD
            entry = seen.entry(outcome.name)
            changes: list[feed_store.Change] = []
            if checked is None:
                answered = rules.rejected(objection, reasons, entry.id, now)
                if rules.back_on_feed(objection, now):
                    changes.append(_change(objection.record_id, objection, ChangeKind.NEW))
            else:
                original = store.objected_record(session, objection.record_id)
                assert original is not None  # a record is archived, never deleted
                submitted = checked.submitted
                named = submitted.subject
                rules.check_correction(original, submitted.item.code, named.lookup, named.kind)
                replacement = rules.correction_stored(
                    store.correct(session, gw.envelope, original, submitted, now),
                    submitted.record.provider_record_id,
                )
                answered = rules.upheld(objection, reasons, replacement, entry.id, now)
                changes.append(_change(replacement, objection, ChangeKind.CORRECTED, original.id))
            store.answered(session, answered)
            audit_store.append(session, gw.audit.mac_key, entry)
            feed_store.append(session, changes, now)  # last: it holds the feed's lock
        return answered

    # --- helpers ---------------------------------------------------------------------------
    def _checked(self, provider_id: str, corrected: Incoming) -> Checked:
        """The corrected record through the submission's checks, as if the providing unit had
        submitted it alone; its rejection is the call's, with the same reason."""
        batch = self.submission.begin(provider_id)
        self.submission.check(batch, [corrected])
        if batch.tally.pending:
            return batch.tally.pending[0]
        violation = batch.tally.outcomes[0].violations[0]
        path, description = violation.field, violation.description
        if path.startswith("$"):  # a JSON path into the payload
            path, description = "payload_json", f"{violation.field}: {description}"
        raise InvalidArgument.field(
            f"{CORRECTED_FIELD}.{path}" if path else CORRECTED_FIELD,
            description,
            reason=violation.reason,
        )

    def _lookup(self, subject_code: str, now: datetime) -> str:
        """The subject's lookup key. Its own calls name it by the code its real-name portal
        asserted, which names a person."""
        _, code = parse_subject(subject_code, now, SubjectKind.NATURAL_PERSON)
        return self.gateway.subject_lookup(code)


def _change(
    record_id: str, objection: Objection, kind: ChangeKind, replaces: str | None = None
) -> feed_store.Change:
    return feed_store.Change(
        record_id, objection.item_code, objection.subject_id, kind.value, replaces
    )


def _person(subject: record_store.Subject | None) -> str | None:
    """The internal id of the subject a subject's own call names: a person (a company on record
    under the same code is not it)."""
    if subject is None or subject.kind is not SubjectKind.NATURAL_PERSON:
        return None
    return subject.id
