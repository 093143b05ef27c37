"""ObjectionService (Art 29) over the real server, on every backend: a subject objects to one of
its records through its real-name portal; the record is labelled in every release at once, and
withheld from every read path 15 days on (the harness's clock, no sleep) until its providing
unit answers; the answer (a correction replacing it, or a rejection bringing it back) is the
subject's written result, on record in the audit log.

Each refusal is checked for its status, its reason, and that nothing changed but, for a refusal
decided on what was read, its own audit entry (outcome REFUSED, the reason)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import select
from support.configured import configured_harness
from support.feed import Exchange, read_changes
from support.government import World as GovernmentWorld
from support.government import share
from support.harness import (
    PERSON,
    Clock,
    Harness,
    Participant,
    make_agreement,
    metadata,
    signed_record,
)
from support.rpc import refusal
from support.scenario import AGREEMENT, PURPOSE, Consented, punishment, punishment_payload, submit

from credit_gateway.adapters.grpc.v1 import exchange_pb2, rights_pb2, rights_pb2_grpc
from credit_gateway.adapters.storage import archive as archive_store
from credit_gateway.adapters.storage.tables import (
    AuditEntryRow,
    ObjectionRow,
    OutboxRow,
    RecordChangeRow,
    RecordRow,
)

PERSON2 = "420106198501011233"
Kind = exchange_pb2.RecordChange
PB = rights_pb2.Objection
LABEL = "OBJECTION_PENDING"
# The feed's heartbeat and poll short enough that a subscription opens at once.
FAST = {"feed_heartbeat_seconds": 1, "feed_poll_ms": 50}
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@dataclass
class World:
    """PERSON's two punishments by hubei-amr ("objected", "other"); an agency PERSON consents
    to; a government department sharing punishments; a national platform pulling them and
    following the feed from before the records were stored (`cursor`)."""

    c: Consented
    gov: GovernmentWorld
    x: Exchange
    cursor: str
    objected: str
    other: str
    occurred_at: datetime  # both records'

    @property
    def h(self) -> Harness:
        return self.c.h

    @property
    def provider(self) -> Participant:
        return self.c.provider

    def subject(self) -> rights_pb2_grpc.ObjectionServiceStub:
        return rights_pb2_grpc.ObjectionServiceStub(self.c.portal.channel)

    def file(
        self,
        record_id: str,
        reason: str = "the fine was paid",
        *,
        code: str = PERSON,
        evidence: str = "DOC-1",
    ) -> PB:
        request = rights_pb2.FileObjectionRequest(
            record_id=record_id, reason=reason, evidence_reference=evidence
        )
        return self.subject().FileObjection(request, metadata=self.c.subject_md(code), timeout=10)

    def get(self, objection_id: str, code: str = PERSON) -> PB:
        return self.subject().GetObjection(
            rights_pb2.ObjectionRef(objection_id=objection_id),
            metadata=self.c.subject_md(code),
            timeout=10,
        )

    def mine(self, code: str = PERSON, **request: Any) -> list[PB]:
        return list(
            self.subject()
            .ListObjections(
                rights_pb2.ListObjectionsRequest(**request),
                metadata=self.c.subject_md(code),
                timeout=10,
            )
            .objections
        )

    def queue(self, provider: Participant | None = None, **request: Any) -> list[PB]:
        provider = provider or self.provider
        stub = rights_pb2_grpc.ObjectionServiceStub(provider.channel)
        answer = stub.ListObjectionQueue(
            rights_pb2.ListObjectionsRequest(**request),
            metadata=metadata(self.h.token(provider)),
            timeout=10,
        )
        return list(answer.objections)

    def answer(self, provider: Participant | None = None, **request: Any) -> PB:
        provider = provider or self.provider
        stub = rights_pb2_grpc.ObjectionServiceStub(provider.channel)
        return stub.AnswerObjection(
            rights_pb2.AnswerObjectionRequest(**request),
            metadata=metadata(self.h.token(provider)),
            timeout=10,
        )

    def reject(self, objection_id: str, reasons: str = "the decision stands") -> PB:
        rejected = rights_pb2.AnswerObjectionRequest.Rejected(reasons=reasons)
        return self.answer(objection_id=objection_id, rejected=rejected)

    def uphold(self, objection_id: str, corrected: Any, reasons: str = "revoked") -> PB:
        upheld = rights_pb2.AnswerObjectionRequest.Upheld(corrected=corrected, reasons=reasons)
        return self.answer(objection_id=objection_id, upheld=upheld)

    def correction(self, record_id: str = "objected-v2", **changes: Any) -> Any:
        """A corrected version of "objected", signed by hubei-amr."""
        fields: dict[str, Any] = {
            "record_id": record_id,
            "item": "ADM.PUNISHMENT",
            "subject": PERSON,
            "payload": {**punishment_payload("D-objected"), "penalty": "warning"},
            "occurred_at": self.occurred_at,  # the same event as the original's
            "notice": "N-1",
        }
        return signed_record(self.provider, **{**fields, **changes})

    def feed_cursor(self) -> str:
        """The feed's cursor of now."""
        stream = self.x.subscribe()
        cursor = str(next(stream).cursor)
        stream.cancel()
        return cursor

    def feed_after(self, cursor: str, enough: int) -> list[tuple[int, str, str, bool]]:
        """(kind, record id, replaces, with content) of the changes after `cursor`."""
        stream = self.x.subscribe(cursor)
        try:
            changes, _ = read_changes(stream, enough)
        finally:
            stream.cancel()
        return [(c.kind, c.record_id, c.replaces, c.HasField("record")) for c in changes]

    def everywhere(self, token: str) -> dict[str, Any]:
        """What each read path releases of PERSON's punishments now: record ids (and labels).
        What the policy withheld is not told the caller (release.summarise)."""
        agency = self.c.query(token)
        shared = share(self.gov, PERSON, "ADM.PUNISHMENT")
        (pulled,) = self.x.pull(PERSON)
        return {
            "agency": {r.record_id: tuple(r.labels) for r in agency.records},
            "government": sorted(r.record_id for r in shared.records),
            "pull": sorted(r.record_id for r in pulled.records),
        }


@pytest.fixture
def w(tmp_path: Path, certs_dir: Path, database_url: str, clock: Clock) -> Iterator[World]:
    with configured_harness(tmp_path, certs_dir, database_url, clock, **FAST) as h:
        yield _world(h)


def _world(h: Harness) -> World:
    provider = h.add_participant("hubei-amr", "providing-unit")
    agency = h.add_participant("zx-credit", "credit-agency")
    portal = h.add_participant("realname-portal", "identity-provider")
    gov = h.add_participant("hubei-drc", "government-department")
    platform = h.add_participant("national-platform", "national-platform")
    make_agreement(
        h,
        agency,
        agreement_id=AGREEMENT,
        categories=("administrative_punishment",),
        purposes=(PURPOSE,),
    )
    every_level = ("open", "authorized", "government")
    punishments = ("administrative_punishment",)
    make_agreement(
        h,
        gov,
        operations=("government_sharing",),
        categories=punishments,
        purposes=("SUPERVISION",),
        levels=every_level,
    )
    make_agreement(
        h,
        platform,
        agreement_id="agr-national",
        operations=("bulk_pull", "change_feed"),
        categories=punishments,
        purposes=("SUPERVISION",),
        levels=every_level,
    )
    x = Exchange(h, platform, {})
    stream = x.subscribe()
    cursor = str(next(stream).cursor)
    stream.cancel()
    now = h.clock.now
    result = submit(
        h, provider, [punishment(provider, "objected", now), punishment(provider, "other", now)]
    )
    assert result.accepted == 2, result
    objected, other = (r.record_id for r in result.results)
    c = Consented(h, provider, agency, portal)
    return World(
        c, GovernmentWorld(h, gov, {}), x, cursor, objected, other, now - timedelta(days=5)
    )


# --- what the database holds --------------------------------------------------------------------


def _state(h: Harness) -> dict[str, Any]:
    """Everything a refusal must leave as it was: objections, records, the feed, the outbox;
    and the audit entries (compared apart)."""
    with h.db.transaction(write=False) as session:

        def rows(*columns: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in session.execute(select(*columns)))

        return {
            "objections": rows(ObjectionRow.id, ObjectionRow.state, ObjectionRow.answered_at),
            "records": rows(RecordRow.id, RecordRow.state, RecordRow.objection_filed_at),
            "feed": rows(RecordChangeRow.seq),
            "outbox": rows(OutboxRow.id),
            "audit": rows(AuditEntryRow.id),
        }


def _entries(h: Harness, ids: set[str]) -> list[dict[str, Any]]:
    with h.db.transaction(write=False) as session:
        bodies = session.scalars(select(AuditEntryRow.body).where(AuditEntryRow.id.in_(ids)))
        return [json.loads(b) for b in bodies]


def _refused(
    h: Harness,
    call: Callable[[], object],
    status: grpc.StatusCode,
    reason: str,
    *,
    on_record: str | None = None,
) -> None:
    """The call is refused with `status` and `reason` and changes nothing; `on_record`: the
    method whose REFUSED entry it writes (a refusal decided on what was read)."""
    before = _state(h)
    assert refusal(call) == (status, reason)
    after = _state(h)
    new = set(map(tuple, after.pop("audit"))) - set(map(tuple, before.pop("audit")))
    assert after == before
    entries = _entries(h, {i for (i,) in new})
    if on_record is None:
        assert entries == []
    else:
        assert [(e["method"], e["outcome"], e["reasons"]) for e in entries] == [
            (on_record, "REFUSED", [reason])
        ]


def _answer_entry(h: Harness, objection_id: str) -> tuple[str | None, dict[str, Any]]:
    with h.db.transaction(write=False) as session:
        entry_id = session.scalar(
            select(ObjectionRow.answer_entry_id).where(ObjectionRow.id == objection_id)
        )
    (entry,) = _entries(h, {str(entry_id)})
    return entry_id, entry


# --- the check ---------------------------------------------------------------------------


def test_an_objection_labels_at_once_suspends_after_15_days_and_a_correction_replaces_it(
    w: World,
) -> None:
    h, objected, other = w.h, w.objected, w.other
    token = w.c.grant()
    filed = w.file(objected, "the fine was paid in full", evidence="RECEIPT-7")
    assert (filed.state, filed.record_id, filed.item_code) == (
        PB.STATE_PENDING,
        objected,
        "ADM.PUNISHMENT",
    )
    assert filed.due_at.ToDatetime() - filed.filed_at.ToDatetime() == timedelta(days=15)
    assert not filed.HasField("result")
    assert not filed.provider_record_id  # the provider's own id is for its queue
    (entry,) = [
        e for e in _entries(h, {i for (i,) in _state(h)["audit"]}) if e["method"] == "FileObjection"
    ]
    assert (entry["caller"], entry["outcome"], entry["items"]) == (
        "self",
        "FILED",
        ["ADM.PUNISHMENT"],
    )

    # Labelled at once, on every path; the other record is not.
    assert w.everywhere(token) == {
        "agency": {objected: (LABEL,), other: ()},
        "government": sorted([objected, other]),
        "pull": sorted([objected, other]),
    }
    (queued,) = w.queue()
    assert (queued.objection_id, queued.provider_record_id, queued.state, queued.reason) == (
        filed.objection_id,
        "objected",
        PB.STATE_PENDING,
        "the fine was paid in full",
    )

    # 15 days without an answer: withheld from every path, by the clock.
    h.clock.advance(days=15)
    assert w.everywhere(token) == {
        "agency": {other: ()},
        "government": [other],
        "pull": [other],
    }
    # The feed from before both were stored sends the other record alone.
    assert w.feed_after(w.cursor, 1) == [(Kind.KIND_NEW, other, "", True)]
    suspended = w.get(filed.objection_id)
    assert suspended.state == PB.STATE_SUSPENDED
    assert suspended.suspended_at == filed.due_at
    assert [o.state for o in w.queue()] == [PB.STATE_SUSPENDED]

    # The provider corrects it: the new version is released everywhere, the old one nowhere.
    cursor = w.feed_cursor()
    upheld = w.uphold(filed.objection_id, w.correction(), "the penalty was reduced on review")
    new = upheld.replacement_record_id
    assert (upheld.state, upheld.provider_record_id) == (PB.STATE_UPHELD, "objected")
    seen = w.everywhere(token)
    assert (seen["agency"], seen["government"], seen["pull"]) == (
        {new: (), other: ()},
        sorted([new, other]),
        sorted([new, other]),
    )
    assert w.feed_after(cursor, 1) == [(Kind.KIND_CORRECTED, new, objected, True)]
    assert w.queue() == []
    with h.db.transaction(write=False) as session:
        old_row, new_row = (session.get(RecordRow, rid) for rid in (objected, new))
        assert old_row is not None
        assert new_row is not None
        assert (old_row.state, old_row.archive_reason, old_row.objection_filed_at) == (
            "archived",
            "corrected",
            None,
        )
        assert (new_row.replaces, new_row.provider_record_id) == (objected, "objected-v2")

    # The subject's written result, and the entry that records the answer.
    result = w.get(filed.objection_id)
    entry_id, entry = _answer_entry(h, filed.objection_id)
    assert (result.state, result.replacement_record_id, result.result.audit_entry_id) == (
        PB.STATE_UPHELD,
        new,
        entry_id,
    )
    for said in ("upheld", "hubei-amr", new, objected, "the penalty was reduced on review"):
        assert said in result.result.text
    assert (entry["method"], entry["caller"], entry["outcome"]) == (
        "AnswerObjection",
        "hubei-amr",
        "UPHELD",
    )
    assert w.mine() == [result]


def test_a_rejection_after_the_suspension_brings_the_record_back_unlabelled_once(
    w: World,
) -> None:
    h, objected, other = w.h, w.objected, w.other
    token = w.c.grant()
    filed = w.file(objected)
    h.clock.advance(days=16)
    cursor = w.feed_cursor()
    rejected = w.reject(filed.objection_id, "the payment came after the decision")
    assert rejected.state == PB.STATE_REJECTED
    assert rejected.answer == "the payment came after the decision"
    assert rejected.suspended_at == filed.due_at  # the suspension stays on record

    seen = w.everywhere(token)
    assert seen["agency"] == {objected: (), other: ()}  # back, and no label
    assert seen["government"] == seen["pull"] == sorted([objected, other])
    # The platforms dropped it (or never got it) meanwhile: it comes back as new.
    assert w.feed_after(cursor, 1) == [(Kind.KIND_NEW, objected, "", True)]

    result = w.get(filed.objection_id)
    entry_id, entry = _answer_entry(h, filed.objection_id)
    assert result.result.audit_entry_id == entry_id
    assert "rejected" in result.result.text
    assert "the payment came after the decision" in result.result.text
    assert entry["outcome"] == "REJECTED"
    assert w.mine(states=[PB.STATE_REJECTED]) == [result]
    assert w.mine(states=[PB.STATE_PENDING, PB.STATE_SUSPENDED]) == []
    assert [o.objection_id for o in w.queue(states=[PB.STATE_REJECTED])] == [filed.objection_id]

    # Answered once: a second answer, of either kind, changes nothing.
    _refused(
        h,
        lambda: w.reject(filed.objection_id),
        PRECONDITION,
        "OBJECTION_ANSWERED",
        on_record="AnswerObjection",
    )
    _refused(
        h,
        lambda: w.uphold(filed.objection_id, w.correction()),
        PRECONDITION,
        "OBJECTION_ANSWERED",
        on_record="AnswerObjection",
    )
    # And the record can be objected to again.
    assert w.file(objected).state == PB.STATE_PENDING


# --- refusals -------------------------------------------------------------------------------------


def test_a_subject_objects_only_to_its_own_records_in_service_once_with_reasons_in_bounds(
    w: World,
) -> None:
    h = w.h
    p2 = signed_record(
        w.provider,
        record_id="p2",
        item="ADM.PUNISHMENT",
        subject=PERSON2,
        payload=punishment_payload("D-p2"),
        occurred_at=h.clock.now - timedelta(days=5),
        notice="N-2",
    )
    (theirs,) = (r.record_id for r in submit(h, w.provider, [p2]).results)

    def file(record_id: str, reason: str = "wrong", evidence: str = "", code: str = PERSON) -> Any:
        return lambda: w.file(record_id, reason, evidence=evidence, code=code)

    # Malformed: refused before anything is read, not on record.
    for reason, bad in [
        ("MISSING_FIELD", file(w.objected, "")),
        ("FIELD_TOO_LONG", file(w.objected, "x" * 2001)),
        ("UNSTORABLE_TEXT", file(w.objected, "a\x00b")),
        ("FIELD_TOO_LONG", file(w.objected, evidence="e" * 257)),
        ("INVALID_ARGUMENT", file("not an id!")),
    ]:
        _refused(h, bad, INVALID, reason)
    # Decided on what was read: on record.
    for record_id, code in [("rec_unknown", PERSON), (theirs, PERSON), (w.objected, PERSON2)]:
        _refused(
            h, file(record_id, code=code), NOT_FOUND, "RECORD_NOT_FOUND", on_record="FileObjection"
        )
    filed = w.file(w.objected, "é" * 2000, evidence="e" * 256)  # the bounds themselves
    _refused(h, file(w.objected), PRECONDITION, "OBJECTION_ALREADY_OPEN", on_record="FileObjection")
    with h.db.transaction() as session:
        row = session.get(RecordRow, w.other)
        assert row is not None
        archive_store.archive(
            session, [(w.other, row.item_code, row.subject_id)], archive_store.DELETED, h.clock.now
        )
    _refused(h, file(w.other), PRECONDITION, "NOT_IN_SERVICE", on_record="FileObjection")

    # Another subject's objection is not there for it.
    assert refusal(lambda: w.get(filed.objection_id, PERSON2)) == (NOT_FOUND, "OBJECTION_NOT_FOUND")
    assert w.mine(PERSON2) == []
    assert [o.objection_id for o in w.mine()] == [filed.objection_id]
    assert refusal(lambda: w.mine(states=[PB.STATE_UNSPECIFIED])) == (INVALID, "INVALID_ARGUMENT")


def test_only_the_records_provider_answers_with_a_correction_checked_as_a_submission(
    w: World,
) -> None:
    h = w.h
    tax = h.add_participant("hubei-tax", "providing-unit")  # also provides punishments
    filed = w.file(w.objected)
    oid = filed.objection_id
    assert w.queue(tax) == []
    _refused(
        h,
        lambda: w.answer(
            tax, objection_id=oid, rejected=rights_pb2.AnswerObjectionRequest.Rejected(reasons="no")
        ),
        NOT_FOUND,
        "OBJECTION_NOT_FOUND",
        on_record="AnswerObjection",
    )
    _refused(
        h,
        lambda: w.reject("obj_unknown"),
        NOT_FOUND,
        "OBJECTION_NOT_FOUND",
        on_record="AnswerObjection",
    )

    unsigned = w.correction()
    unsigned.signature = b"\x00" * 64
    malformed = [
        ("MISSING_FIELD", lambda: w.answer(objection_id=oid)),
        ("MISSING_FIELD", lambda: w.reject(oid, "")),
        ("FIELD_TOO_LONG", lambda: w.reject(oid, "r" * 2001)),
        (
            "MISSING_FIELD",
            lambda: w.answer(
                objection_id=oid, upheld=rights_pb2.AnswerObjectionRequest.Upheld(reasons="r")
            ),
        ),
        ("BAD_SIGNATURE", lambda: w.uphold(oid, unsigned)),
        ("SCHEMA_VIOLATION", lambda: w.uphold(oid, w.correction(payload={"decision_no": "D"}))),
        ("ART22_NOTICE_MISSING", lambda: w.uphold(oid, w.correction(notice=""))),
    ]
    for reason, bad in malformed:
        _refused(h, bad, INVALID, reason)
    permit = {"permit_no": "P-1", "permit_type": "food", "authority": "AMR"}
    for reason, bad in [
        ("CORRECTION_OTHER_ITEM", w.correction(item="ADM.PERMIT", payload=permit, notice="")),
        ("CORRECTION_OTHER_SUBJECT", w.correction(subject=PERSON2)),
        ("CORRECTION_ID_TAKEN", w.correction(record_id="other")),
        ("CORRECTION_ID_TAKEN", w.correction(record_id="objected")),
    ]:
        _refused(
            h, lambda bad=bad: w.uphold(oid, bad), INVALID, reason, on_record="AnswerObjection"
        )
    # Still open: the queue holds it, oldest first, and holds no more than asked for.
    h.clock.advance(minutes=1)
    later = w.file(w.other)
    assert [o.objection_id for o in w.queue()] == [oid, later.objection_id]
    assert [o.objection_id for o in w.queue(limit=1)] == [oid]
    assert [o.objection_id for o in w.mine()] == [later.objection_id, oid]  # newest first
