"""The time rules (`credit-gateway maintain`, and serve's periodic run under the lease "maintain"),
on every database, driven by the harness's clock: each rule moves what has come due at its time
and not a second before, each move is an audit entry, and a second run at the same time moves
and writes nothing. Leases: one holder at a time, however many take at once."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select, update
from support.configured import configured_harness
from support.harness import PERSON, Clock, Harness, signed_record
from support.scenario import Consented, consented, punishment_payload, submit
from support.waiting import wait_until

from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import consent_pb2, consent_pb2_grpc
from credit_gateway.adapters.storage import leases
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import (
    AuditEntryRow,
    ConsentEventRow,
    ConsentRow,
    ObjectionRow,
    RecordChangeRow,
    RecordRow,
    RunnerLeaseRow,
)
from credit_gateway.cli.main import main
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.timestamps import canonical_timestamp
from credit_gateway.errors import FailedPrecondition
from credit_gateway.services import maintain as maintain_service
from credit_gateway.services.maintain import JOBS, LEASE, Maintenance

pytestmark = pytest.mark.usefixtures("no_outside_settings")

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
ZEROS = dict.fromkeys(JOBS, 0)


def snapshot(db: Database) -> dict[str, object]:
    """Everything a run may write, counted: a run that moves nothing leaves it as it was."""

    def grouped(column: Any) -> dict[str, int]:
        rows = session.execute(select(column, func.count()).group_by(column))
        return {str(value): int(n) for value, n in rows}

    def rows(table: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)

    with db.transaction(write=False) as session:
        return {
            "entries": rows(AuditEntryRow),
            "pruned": grouped(AuditEntryRow.pruned),
            "changes": rows(RecordChangeRow),
            "events": rows(ConsentEventRow),
            "objections": grouped(ObjectionRow.state),
            "records": grouped(RecordRow.state),
            "consents": grouped(ConsentRow.status),
        }


def entries(db: Database, method: str) -> list[dict[str, Any]]:
    with db.transaction(write=False) as session:
        bodies = session.scalars(
            select(AuditEntryRow.body)
            .where(AuditEntryRow.method == method)
            .order_by(AuditEntryRow.seq)
        )
        return [json.loads(b) for b in bodies]


def changes(db: Database) -> list[tuple[str, str]]:
    with db.transaction(write=False) as session:
        rows = session.execute(
            select(RecordChangeRow.kind, RecordChangeRow.record_id).order_by(RecordChangeRow.seq)
        )
        return [(kind, rid) for kind, rid in rows]


def record_id(db: Database, provider_record_id: str) -> tuple[str, str]:
    """(record id, subject id) of a stored record."""
    with db.transaction(write=False) as session:
        found = session.execute(
            select(RecordRow.id, RecordRow.subject_id).where(
                RecordRow.provider_record_id == provider_record_id
            )
        ).one()
        return found[0], found[1]


def file_objection(h: Harness, provider_id: str, record: str, subject: str) -> str:
    """A pending objection filed now, as FileObjection stores one (the record's
    objection_filed_at set, due in 15 days)."""
    now = h.clock.now
    objection = new_id("obj")
    with h.db.transaction() as session:
        session.add(
            ObjectionRow(
                id=objection, record_id=record, subject_id=subject, provider_id=provider_id,
                state="pending", reason="not mine", evidence_reference="", filed_at=now,
                due_at=now + 15 * DAY, suspended_at=None, answered_at=None, answer=None,
                replacement_id=None, answer_entry_id=None,
            )
        )  # fmt: skip
        session.execute(
            update(RecordRow).where(RecordRow.id == record).values(objection_filed_at=now)
        )
    return objection


class Runs:
    """Runs `maintain` at times after `start` and checks each against what it should move."""

    def __init__(self, h: Harness) -> None:
        self.h, self.start = h, h.clock.now
        self.runner = Maintenance(h.gateway, "test-runner")

    def at(self, after: timedelta, **moved: int) -> None:
        """At start + `after`: moves as `moved` says (job -> count, dashes as underscores),
        then a second run moves and writes nothing."""
        self.h.clock.now = self.start + after
        expected = {**ZEROS, **{job.replace("_", "-"): n for job, n in moved.items()}}
        assert dict(self.runner.once().counts) == expected, after
        before = snapshot(self.h.db)
        assert dict(self.runner.once().counts) == ZEROS, after
        assert snapshot(self.h.db) == before, after


def test_each_rule_moves_at_its_time_not_before_once_with_its_entry(harness: Harness) -> None:
    h = harness
    world = consented(h)  # a punishment about PERSON, occurred 5 days ago, of no severity
    seed, subject = record_id(h.db, "seed-1")
    general = signed_record(
        world.provider, record_id="general-1", item="ADM.PUNISHMENT", subject=PERSON,
        payload={**punishment_payload("D-general"), "severity": "general"},  # 365 days
        occurred_at=h.clock.now - 5 * DAY, notice="N-2",
    )  # fmt: skip
    assert submit(h, world.provider, [general]).accepted == 1
    short, _ = record_id(h.db, "general-1")
    with h.db.transaction() as session:  # the seed as stored before 0008: the item's 1095 days
        session.execute(update(RecordRow).where(RecordRow.id == seed).values(disclosure_until=None))
    consent = world.granted().consent.consent_id  # valid 30 days
    objection = file_objection(h, world.provider.id, seed, subject)
    runs = Runs(h)
    runs.at(timedelta(0))  # nothing due: nothing moves, nothing is written

    # Art 29: unanswered for 15 days, the objection is suspended and the platforms told.
    runs.at(15 * DAY - SECOND)
    runs.at(15 * DAY, objection_suspended=1)
    with h.db.transaction(write=False) as session:
        row = session.get(ObjectionRow, objection)
        assert row is not None
        assert (row.state, row.suspended_at) == ("suspended", runs.start + 15 * DAY)
    assert changes(h.db)[-1] == ("suspended", seed)
    (suspended,) = entries(h.db, "maintain.objection-suspended")
    assert (suspended["caller"], suspended["subject"], suspended["items"]) == (
        "operator", subject, [objection, seed],
    )  # fmt: skip
    assert (suspended["outcome"], suspended["reasons"]) == ("SUSPENDED", ["OBJECTION_SUSPENDED"])

    # The consent's validity ends: expired, with the event its grantee's watch reads.
    runs.at(30 * DAY - SECOND)
    runs.at(30 * DAY, consent_expired=1)
    with h.db.transaction(write=False) as session:
        stored = session.get(ConsentRow, consent)
        assert stored is not None
        assert (stored.status, stored.status_changed_at) == ("expired", runs.start + 30 * DAY)
        event = session.scalars(
            select(ConsentEventRow).order_by(ConsentEventRow.seq.desc())
        ).first()
        assert event is not None
        assert (event.consent_id, event.from_status, event.to_status, event.actor) == (
            consent, "active", "expired", "operator",
        )  # fmt: skip
    (expired,) = entries(h.db, "maintain.consent-expired")
    assert (expired["consent"], expired["subject"], expired["reasons"]) == (
        consent, subject, ["CONSENT_EXPIRED"],
    )  # fmt: skip

    # The general punishment's 365 days end 360 days on (it occurred 5 days before); the feed
    # keeps 30 days of changes, so the first three (two new, one suspended) go first.
    runs.at(360 * DAY - SECOND, feed_pruned=3)
    runs.at(360 * DAY, disclosure_ended=1)
    assert changes(h.db)[-1] == ("expired", short)
    # The seed, stored without its end: the item's default 1095 days, from when it occurred.
    runs.at(1090 * DAY - SECOND, feed_pruned=1)
    runs.at(1090 * DAY, disclosure_ended=1)
    assert changes(h.db) == [("expired", seed)]  # the short one's was pruned meanwhile
    ended = entries(h.db, "maintain.disclosure-ended")
    assert [(e["subject"], e["items"], e["outcome"]) for e in ended] == [
        (subject, [short], "ARCHIVED"),
        (subject, [seed], "ARCHIVED"),
    ]
    with h.db.transaction(write=False) as session:
        archived = session.execute(
            select(RecordRow.archive_reason, RecordRow.archived_at, RecordRow.objection_filed_at)
            .where(RecordRow.id.in_([short, seed]))
            .order_by(RecordRow.archived_at)
        ).all()
    assert [tuple(a) for a in archived] == [
        ("period_ended", runs.start + 360 * DAY, None),
        ("period_ended", runs.start + 1090 * DAY, None),
    ]

    # Art 19: bodies older than 3 years go (integrated entries only), their hashes kept.
    h.gateway.audit.integrate_all()
    retention = timedelta(days=h.settings.audit_retention_days)
    runs.at(retention)  # what was written at the start is exactly 3 years old: kept
    due = old_entries(h.db, runs.start + SECOND)
    assert due > 0
    runs.at(retention + SECOND, inquiries_pruned=due)
    (pruned,) = entries(h.db, "maintain.inquiries-pruned")
    assert (pruned["subject"], pruned["items"]) == (
        None, [canonical_timestamp(runs.start + SECOND), str(due)],
    )  # fmt: skip


def old_entries(db: Database, before: datetime) -> int:
    with db.transaction(write=False) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AuditEntryRow)
                .where(AuditEntryRow.at < before, AuditEntryRow.pruned.is_(False))
            )
            or 0
        )


# --- the command -------------------------------------------------------------------------------


def test_the_command_prints_what_each_job_moved_and_is_refused_while_another_holds_the_lease(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    h = harness
    world = consented(h)
    world.granted(valid_until=to_timestamp(h.clock.now + DAY))
    config = str(h.write_config(tmp_path / "gateway.toml"))
    monkeypatch.setattr(maintain_service, "utcnow", h.clock)

    def run(*flags: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--config", config, "maintain", *flags])
        out, err = capsys.readouterr()
        return code, out, err

    h.clock.advance(days=1)
    code, out, _ = run()
    assert code == 0
    assert out.splitlines() == [
        "maintain: objection-suspended 0",
        "maintain: disclosure-ended 0",
        "maintain: consent-expired 1",
        "maintain: inquiries-pruned 0",
        "maintain: feed-pruned 0",
    ]
    with h.db.transaction(write=False) as session:
        assert leases.held(session, LEASE, h.clock.now) is None  # given back at the end
    before = snapshot(h.db)
    code, out, _ = run()
    assert (code, out) == (0, "".join(f"maintain: {job} 0\n" for job in JOBS))
    assert snapshot(h.db) == before

    # Another runner holds the lease: refused, nothing written, the lease still its own.
    world.granted(valid_until=to_timestamp(h.clock.now + DAY))
    h.clock.advance(days=1)
    until = h.clock.now + timedelta(minutes=10)
    with h.db.transaction() as session:
        assert leases.take(session, LEASE, "replica-b", h.clock.now, until)
    before = snapshot(h.db)
    code, out, err = run()
    assert (code, out) == (2, "")
    assert err == (
        "credit-gateway: error: maintain's lease is held by replica-b until "
        f"{canonical_timestamp(until)}: a server applies the time rules every "
        "maintain_interval_seconds; --force runs them beside it\n"
    )
    assert snapshot(h.db) == before
    code, out, _ = run("--force")
    assert (code, out.splitlines()[2]) == (0, "maintain: consent-expired 1")
    with h.db.transaction(write=False) as session:
        assert leases.held(session, LEASE, h.clock.now) == leases.Lease(LEASE, "replica-b", until)


# --- the lease -----------------------------------------------------------------------------------


def test_a_lease_has_one_holder_until_it_runs_out_or_is_given_back(db: Database) -> None:
    now = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
    later = now + timedelta(seconds=30)

    def take(holder: str, at: datetime) -> bool:
        with db.transaction() as session:
            return leases.take(session, "job", holder, at, at + timedelta(seconds=30))

    def renew(holder: str, until: datetime) -> bool:
        with db.transaction() as session:
            return leases.renew(session, "job", holder, until)

    def holder(at: datetime) -> str | None:
        with db.transaction(write=False) as session:
            held = leases.held(session, "job", at)
            return None if held is None else held.holder

    assert holder(now) is None
    assert take("a", now)
    assert not take("b", now)
    assert take("a", now)  # its own already: taken again (the same until: still true)
    assert renew("a", later)
    assert renew("a", later)  # nothing changes, and it is still a's
    assert not renew("b", later)
    assert (holder(now), holder(later)) == ("a", None)
    assert not take("b", later - timedelta(microseconds=1))
    assert take("b", later)  # ran out: another takes it, and the old holder renews no more
    assert not renew("a", later + timedelta(seconds=60))
    with db.transaction() as session:
        leases.release(session, "job", "a", later)  # not a's: nothing changes
    assert holder(later) == "b"
    with db.transaction() as session:
        leases.release(session, "job", "b", later)
    assert holder(later) is None
    assert take("a", later)  # given back: taken at once
    with db.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(RunnerLeaseRow)) == 1


def test_of_replicas_taking_one_lease_at_once_exactly_one_holds_it(db: Database) -> None:
    now = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
    takers = 6
    start = threading.Barrier(takers)

    def race(at: datetime) -> list[str]:
        won: list[str] = []

        def take(holder: str) -> None:
            start.wait()
            with db.transaction() as session:
                if leases.take(session, "race", holder, at, at + timedelta(seconds=10)):
                    won.append(holder)

        threads = [threading.Thread(target=take, args=(f"r{i}",)) for i in range(takers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return won

    first = race(now)  # no row yet: every one inserts it
    assert len(first) == 1
    second = race(now + timedelta(seconds=10))  # run out: every one updates it
    assert len(second) == 1
    with db.transaction(write=False) as session:
        held = leases.held(session, "race", now + timedelta(seconds=10))
    assert held is not None
    assert held.holder == second[0]


def test_a_replica_runs_maintain_only_while_it_holds_the_lease(harness: Harness) -> None:
    h = harness
    first, second = Maintenance(h.gateway, "replica-a"), Maintenance(h.gateway, "replica-b")
    assert first.scheduled() == maintain_service.Report(ZEROS)
    assert second.scheduled() is None  # a's, for three intervals
    h.clock.now += first.lease_time - SECOND
    assert first.scheduled() is not None  # renewed at each of its runs
    assert second.scheduled() is None
    h.clock.now += first.lease_time
    assert second.scheduled() is not None  # a stopped renewing: b takes over
    assert first.scheduled() is None
    with pytest.raises(FailedPrecondition) as refused:
        first.once()
    assert refused.value.reason == "MAINTAIN_LEASE_HELD"


def test_a_run_holds_the_lease_at_the_instant_it_applies_the_rules_at(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock read once a run: one that moves between reads (here an hour a read) cannot
    leave a run applying the rules at a time its lease has already run out at."""
    h = harness
    consent = consented(h).granted(valid_until=to_timestamp(h.clock.now + timedelta(minutes=30)))
    runner = Maintenance(h.gateway, "replica-a")

    def ticking() -> datetime:
        h.clock.advance(hours=1)
        return h.clock.now

    monkeypatch.setattr(h.gateway, "clock", ticking)
    report = runner.scheduled()
    assert report is not None
    assert report.counts["consent-expired"] == 1
    (entry,) = entries(h.db, "maintain.consent-expired")
    assert entry["consent"] == consent.consent.consent_id
    with h.db.transaction(write=False) as session:
        lease = leases.held(session, LEASE, datetime.fromisoformat(entry["at"]))
    assert lease is not None
    assert lease.holder == "replica-a"


# --- inside serve --------------------------------------------------------------------------------


@pytest.fixture
def fast(tmp_path: Path, certs_dir: Path, database_url: str, clock: Clock) -> Iterator[Harness]:
    """Maintain every second; tokens that outlive the hour the clock is moved by."""
    with configured_harness(
        tmp_path, certs_dir, database_url, clock,
        maintain_interval_seconds=1, access_token_ttl_seconds=7200,
    ) as h:  # fmt: skip
        yield h


def test_serve_expires_a_consent_on_its_own_and_the_grantees_watch_sees_it(fast: Harness) -> None:
    h = fast
    world = consented(h)
    consent = world.granted(valid_until=to_timestamp(h.clock.now + timedelta(hours=1)))
    target = consent.consent.consent_id
    events: queue.Queue[consent_pb2.ConsentEvent] = queue.Queue()
    stream = consent_pb2_grpc.ConsentServiceStub(world.agency.channel).WatchConsents(
        consent_pb2.WatchConsentsRequest(), metadata=world.md(), timeout=30
    )
    reader = threading.Thread(target=lambda: _read(stream, events), daemon=True)
    reader.start()
    try:
        _until_live(world, events)
        h.clock.advance(hours=1)
        wait_until(lambda: _status(h.db, target) == "expired", what="for serve's next run")
        event = _next_of(events, target)
        assert event.consent.status == consent_pb2.CONSENT_STATUS_EXPIRED
    finally:
        stream.cancel()
        reader.join(timeout=5)
    with h.db.transaction(write=False) as session:
        assert leases.held(session, LEASE, h.clock.now) is not None  # serve's, renewed
    (entry,) = entries(h.db, "maintain.consent-expired")
    assert entry["consent"] == target


def _status(db: Database, consent_id: str) -> str | None:
    with db.transaction(write=False) as session:
        return session.scalar(select(ConsentRow.status).where(ConsentRow.id == consent_id))


def _read(stream: Any, events: queue.Queue[consent_pb2.ConsentEvent]) -> None:
    try:
        for event in stream:
            events.put(event)
    except grpc.RpcError:
        pass  # cancelled at the end


def _until_live(world: Consented, events: queue.Queue[consent_pb2.ConsentEvent]) -> None:
    """The watch starts from "now" when the server takes the call, which this side cannot see:
    consents are granted until one's event arrives (each another consent than the one watched)."""
    for _ in range(20):
        world.granted()
        try:
            events.get(timeout=0.5)
            return
        except queue.Empty:
            continue
    pytest.fail("the watch never delivered an event")


def _next_of(events: queue.Queue[consent_pb2.ConsentEvent], consent_id: str) -> Any:
    while True:
        event = events.get(timeout=10)
        if event.HasField("consent") and event.consent.consent_id == consent_id:
            return event
