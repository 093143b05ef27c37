"""SubscribeChanges: a platform follows the changes to records of its agreement's items from an
opaque cursor, each batch decided by the policy on Channel.EXCHANGE_FEED and on record before it
is sent; heartbeats carry the cursor; a resumed cursor gets only later changes, on any replica
(support/feed.py)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select, update
from support.configured import configured_harness, sqlite_harness
from support.databases import backends
from support.feed import (
    AGREEMENT,
    OTHER_COMPANY,
    PURPOSE,
    Exchange,
    entries,
    exchange_world,
    read_changes,
    replica,
)
from support.harness import COMPANY, PERSON, Clock, Harness, make_agreement, metadata
from support.rpc import refusal
from support.waiting import wait_until

from credit_gateway.adapters.grpc.v1 import (
    exchange_pb2,
    exchange_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
)
from credit_gateway.adapters.storage import feed as feed_store
from credit_gateway.adapters.storage.tables import AuditEntryRow, RecordRow
from credit_gateway.services import operator
from credit_gateway.services.feed import FeedService

Kind = exchange_pb2.RecordChange
# Small enough that a test sees heartbeats and several batches without waiting long.
FAST = {"feed_heartbeat_seconds": 1, "feed_poll_ms": 50, "feed_batch": 2}


@pytest.fixture
def x(tmp_path: Path, certs_dir: Path, database_url: str, clock: Clock) -> Iterator[Exchange]:
    with configured_harness(tmp_path, certs_dir, database_url, clock, **FAST) as h:
        yield exchange_world(h)


def _entry_count(h: Harness) -> int:
    with h.db.transaction(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntryRow)) or 0)


def test_new_records_arrive_in_order_heartbeats_carry_the_cursor_and_a_resume_gets_only_later(
    x: Exchange,
) -> None:
    stream = x.subscribe()
    opened = next(stream)  # at once: the cursor of "now"
    assert opened.cursor
    assert not opened.changes

    vol, reg, permit = x.submit(
        ("c_vol", "COM.VOLUNTEER", COMPANY),  # outside the agreement: never sent
        ("c_reg", "REG.ENTERPRISE", COMPANY),
        ("o_permit", "ADM.PERMIT", OTHER_COMPANY),
    )
    changes, messages = read_changes(stream, 2)

    assert [(c.kind, c.record_id) for c in changes] == [
        (Kind.KIND_NEW, reg),
        (Kind.KIND_NEW, permit),
    ]
    first = changes[0]
    assert (first.subject_code, first.item_code, first.record.record_id) == (
        COMPANY,
        "REG.ENTERPRISE",
        reg,
    )
    assert b"M-c_reg" in first.record.payload_json
    assert first.record.provider_code == "hubei-amr"
    assert first.changed_at.seconds > 0
    assert vol.encode() not in b"".join(m.SerializeToString() for m in messages)
    # Each subject with anything sent is one entry, committed before the batch was sent.
    sent = entries(x.h, "SubscribeChanges")
    assert sorted(e["id"] for e in sent) == sorted(i for m in messages for i in m.inquiry_ids)
    assert sorted(r for e in sent for r in e["released"]) == sorted([reg, permit])
    assert {(e["agreement"], e["purpose"], e["caller"]) for e in sent} == {
        (AGREEMENT, PURPOSE, x.platform.id)
    }

    beat = next(stream)  # nothing new: a heartbeat within feed_heartbeat_seconds
    assert not beat.changes
    assert beat.cursor
    stream.cancel()

    (later,) = x.submit(("p_permit", "ADM.PERMIT", PERSON))
    resumed = x.subscribe(beat.cursor)
    again, _ = read_changes(resumed, 1)
    assert [(c.kind, c.record_id, c.subject_code) for c in again] == [
        (Kind.KIND_NEW, later, PERSON)
    ]
    assert next(resumed).changes == []  # and then nothing: no duplicate
    resumed.cancel()


def test_a_record_taken_out_of_service_comes_as_restored_without_content_and_is_never_pulled(
    x: Exchange,
) -> None:
    stream = x.subscribe()
    next(stream)
    (rid,) = x.submit(("c_reg", "REG.ENTERPRISE", COMPANY))
    (new,), _ = read_changes(stream, 1)
    assert new.kind == Kind.KIND_NEW
    assert new.HasField("record")

    # What #14's transitions will do: the record archived, and its change in the feed.
    with x.h.db.transaction() as session:
        subject_id = session.scalar(select(RecordRow.subject_id).where(RecordRow.id == rid))
        session.execute(update(RecordRow).where(RecordRow.id == rid).values(state="archived"))
        feed_store.append(
            session,
            [feed_store.Change(rid, "REG.ENTERPRISE", str(subject_id), "restored")],
            x.h.clock.now,
        )
    (restored,), _ = read_changes(stream, 1)
    stream.cancel()

    assert (restored.kind, restored.record_id, restored.subject_code) == (
        Kind.KIND_RESTORED,
        rid,
        COMPANY,
    )
    assert not restored.HasField("record")
    (pulled,) = x.pull(COMPANY)
    assert rid not in [r.record_id for r in pulled.records]


def test_a_platforms_own_pushes_never_come_back_on_its_feed(x: Exchange) -> None:
    """A record the platform pushed (stored with it as provider) is not sent back to it; the
    cursor moves over it, and what others submitted still comes."""
    first = x.subscribe()
    cursor = next(first).cursor
    first.cancel()
    (echo,) = x.submit(("own_reg", "REG.ENTERPRISE", COMPANY))
    with x.h.db.transaction() as session:  # as PushRecords stores a platform's record
        session.execute(
            update(RecordRow).where(RecordRow.id == echo).values(provider_id=x.platform.id)
        )
    (other,) = x.submit(("other_reg", "REG.ENTERPRISE", OTHER_COMPANY))
    stream = x.subscribe(cursor)
    got, _ = read_changes(stream, 1)
    stream.cancel()
    assert [c.record_id for c in got] == [other]


def test_cursors_of_another_agreement_tampered_or_beyond_the_head_are_invalid(
    x: Exchange,
) -> None:
    h = x.h
    other = h.add_participant("hubei-peer", "provincial-platform")
    make_agreement(
        h,
        other,
        agreement_id="agr-peer",
        operations=("change_feed",),
        categories=("registration",),
        purposes=(PURPOSE,),
    )
    # The other platform's own subscription, with its own token.
    stream = exchange_pb2_grpc.ExchangeServiceStub(other.channel).SubscribeChanges(
        exchange_pb2.SubscribeRequest(agreement_id="agr-peer", purpose=PURPOSE),
        metadata=metadata(h.token(other)),
        timeout=10,
    )
    theirs_cursor = next(stream).cursor
    stream.cancel()
    mine = x.subscribe()
    cursor = next(mine).cursor
    mine.cancel()
    before = _entry_count(h)
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "AB")
    beyond = FeedService(h.gateway).cursor(AGREEMENT, 10**9)

    for bad in (theirs_cursor, tampered, beyond, "x" * 40, cursor + "="):
        assert refusal(lambda bad=bad: next(x.subscribe(bad))) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "CURSOR_INVALID",
        ), bad
    assert _entry_count(h) == before
    resumed = x.subscribe(cursor)  # the good one still resumes
    assert next(resumed).cursor == cursor
    resumed.cancel()


def test_a_cursor_below_the_floor_after_a_prune_has_expired(x: Exchange) -> None:
    h = x.h
    stream = x.subscribe()
    old = next(stream).cursor
    x.submit(("c_reg", "REG.ENTERPRISE", COMPANY), ("o_reg", "REG.ENTERPRISE", OTHER_COMPANY))
    _, messages = read_changes(stream, 2)
    stream.cancel()
    latest = messages[-1].cursor

    h.clock.advance(days=h.settings.feed_retention_days, seconds=1)
    floor, deleted = FeedService(h.gateway).prune()
    assert deleted == 2
    with h.db.transaction(write=False) as session:
        assert feed_store.head(session) == (floor, floor)
        (entry,) = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.method == "feed.prune")
        ).all()
        assert (entry.caller, entry.outcome, entry.subject_id) == ("operator", "PRUNED", None)
    assert FeedService(h.gateway).prune() == (floor, 0)  # nothing left: nothing on record

    code, reason = refusal(lambda: next(x.subscribe(old)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CURSOR_EXPIRED")
    with pytest.raises(grpc.RpcError) as expired:
        next(x.subscribe(old))
    assert "PullRecords" in str(expired.value.details())
    at_floor = x.subscribe(latest)  # nothing it needs was pruned
    assert next(at_floor).cursor == latest
    at_floor.cancel()


def test_an_agreement_that_is_missing_or_not_the_callers_is_refused_at_open_on_record(
    x: Exchange,
) -> None:
    h = x.h
    other = h.add_participant("hubei-peer", "provincial-platform")
    make_agreement(h, other, agreement_id="agr-peer", operations=("change_feed",),
                   categories=("registration",), purposes=(PURPOSE,))  # fmt: skip

    for agreement, reason in (
        ("agr-peer", "AGREEMENT_OTHER_PARTY"),
        ("agr-none", "AGREEMENT_REQUIRED"),
    ):
        assert refusal(lambda a=agreement: next(x.subscribe(agreement_id=a))) == (
            grpc.StatusCode.PERMISSION_DENIED,
            reason,
        )
    refused = entries(h, "SubscribeChanges")
    assert [(e["agreement"], e["outcome"], e["reasons"]) for e in refused] == [
        ("agr-peer", "REFUSED", ["AGREEMENT_OTHER_PARTY"]),
        ("agr-none", "REFUSED", ["AGREEMENT_REQUIRED"]),
    ]


def test_an_agreement_suspended_meanwhile_ends_the_stream_with_its_refusal_on_record(
    x: Exchange,
) -> None:
    stream = x.subscribe()
    next(stream)
    operator.suspend_agreement(x.h.settings, AGREEMENT)
    x.submit(("c_reg", "REG.ENTERPRISE", COMPANY))

    def drain() -> None:
        for batch in stream:
            assert not batch.changes  # heartbeats only, until the batch is refused

    assert refusal(drain) == (grpc.StatusCode.PERMISSION_DENIED, "AGREEMENT_SUSPENDED")
    (entry,) = entries(x.h, "SubscribeChanges")
    assert (entry["outcome"], entry["reasons"], entry["released"]) == (
        "REFUSED",
        ["AGREEMENT_SUSPENDED"],
        [],
    )


@pytest.mark.skipif("postgresql" not in backends(), reason="replicas share a PostgreSQL database")
def test_a_subscriber_dropping_at_random_and_resuming_on_either_replica_misses_nothing(
    backend: str, tmp_path: Path, certs_dir: Path, database_url: str, clock: Clock
) -> None:
    if backend != "postgresql":
        pytest.skip("replicas share a PostgreSQL database")
    rng = random.Random(20261202)
    with configured_harness(tmp_path, certs_dir, database_url, clock, **FAST) as h:
        x = exchange_world(h)
        b = replica(h, tmp_path / "b", **FAST)
        try:
            replicas = (h, b)
            expected: list[str] = []
            received: list[str] = []
            cursor = ""
            for turn in range(20):
                via = replicas[turn % 2]
                with via.channel(x.platform.cert) as channel:
                    stream = x.subscribe(cursor, via=via, channel=channel)
                    cursor = next(stream).cursor
                    seeds = [
                        (
                            f"t{turn}-{n}",
                            rng.choice(("REG.ENTERPRISE", "ADM.PERMIT", "COM.VOLUNTEER")),
                            rng.choice((COMPANY, OTHER_COMPANY)),
                        )
                        for n in range(rng.randint(1, 5))
                    ]
                    ids = x.submit(*seeds, via=rng.choice(replicas))
                    expected += [
                        i for i, s in zip(ids, seeds, strict=True) if s[1] != "COM.VOLUNTEER"
                    ]
                    for _ in range(rng.randint(0, 3)):  # then it drops, wherever it is
                        batch = next(stream)
                        received += [c.record_id for c in batch.changes]
                        cursor = batch.cursor
                    stream.cancel()
            with replicas[0].channel(x.platform.cert) as channel:
                stream = x.subscribe(cursor, via=replicas[0], channel=channel)
                while len(received) < len(expected):
                    batch = next(stream)
                    received += [c.record_id for c in batch.changes]
                stream.cancel()
            assert len(received) == len(set(received)), "a change came twice"
            assert set(received) == set(expected)
        finally:
            b.close()


def test_a_thousand_open_subscriptions_leave_unary_calls_answering(
    tmp_path: Path, certs_dir: Path
) -> None:
    with sqlite_harness(
        tmp_path, certs_dir, streams_per_caller=2000, streams_total=5000, stream_max_seconds=600
    ) as h:
        x = exchange_world(h)
        x.submit(("c_reg", "REG.ENTERPRISE", COMPANY))
        agency = h.add_participant("zx-credit", "credit-agency")
        make_agreement(h, agency, categories=("registration",))
        inquiry = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)
        query = inquiry_pb2.QueryRequest(
            subject_code=COMPANY, purpose="LOAN_APPROVAL", agreement_id=f"agr-{agency.id}"
        )
        token = metadata(h.token(agency))

        def rate(calls: int) -> float:
            started = time.perf_counter()
            for _ in range(calls):
                answer = inquiry.QueryOpen(query, metadata=token, timeout=10)
                assert answer.records
            return calls / (time.perf_counter() - started)

        alone = rate(200)
        channels = [h.channel(x.platform.cert) for _ in range(10)]
        streams = []
        try:
            for n in range(1000):
                streams.append(x.subscribe(channel=channels[n // 100], timeout=300))
            for stream in streams:
                assert next(stream).cursor  # each one open, its cursor given
            wait_until(lambda: h.running.limits.open_streams() >= 1000, what="for the streams")
            beside = rate(200)
            print(
                f"\nQueryOpen: {alone:.0f} calls/s alone, {beside:.0f} calls/s beside "
                f"{h.running.limits.open_streams()} open SubscribeChanges streams"
            )
            # A change still reaches them.
            (rid,) = x.submit(("o_reg", "REG.ENTERPRISE", OTHER_COMPANY))
            for stream in streams[::97]:
                changes, _ = read_changes(stream, 1)
                assert [c.record_id for c in changes] == [rid]
        finally:
            for stream in streams:
                stream.cancel()
            for channel in channels:
                channel.close()
        wait_until(lambda: h.running.limits.open_streams() == 0, what="for the streams to end")
