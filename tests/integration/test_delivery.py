"""Outbound delivery (issue 12): records that a push agreement shares with a peer platform
leave through the outbox, decided by the policy, to the peer's PushRecords, exactly once in
effect; with the peer killed mid-delivery, staying down, or two replicas delivering."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.harness import free_port, start_harness
from support.two_gateways import (
    DELIVERY,
    NATIONAL,
    PROVINCIAL,
    Pair,
    add_peer,
    count_pushed,
    national_database,  # noqa: F401 - the fixture national_url
    outbox_rows,
    outbox_states,
    pushed_from,
    released_by_delivery,
    sent_once_per_attempt,
    serve_platform,
    two_gateways,
)
from support.waiting import wait_until

from credit_gateway.adapters.grpc.peer_client import PeerClient
from credit_gateway.adapters.storage import outbox
from credit_gateway.adapters.storage.peers import PeerCredentials
from credit_gateway.services.delivery import (
    Acknowledgement,
    Delivery,
    Sender,
    SenderFor,
    Shipment,
    client_key_id,
)

pytestmark = pytest.mark.usefixtures("no_outside_settings")


@pytest.fixture
def pair(tmp_path: Path, database_url: str, national_url: str) -> Iterator[Pair]:
    with two_gateways(tmp_path, database_url, national_url) as linked:
        yield linked


def settled(db: Any) -> bool:
    return outbox.PENDING not in outbox_states(db)


def test_records_flow_both_ways_once_and_never_back(pair: Pair) -> None:
    prov, nat = pair.provincial, pair.national
    prov.submit(prov.records(6, subjects=3))
    nat.submit(nat.records(2, subjects=1, prefix="n"))
    wait_until(lambda: count_pushed(nat.db, PROVINCIAL) == 6, 20, "for the national platform")
    wait_until(lambda: count_pushed(prov.db, NATIONAL) == 2, 20, "for the provincial center")
    wait_until(lambda: settled(prov.db) and settled(nat.db), 20, "for both outboxes")
    arrived = pushed_from(nat.db, PROVINCIAL)
    # Each keeps its origin: our record id, our key id there, the providing unit here.
    our_kid = client_key_id(pair.provincial_at_national.cert.cert_path.read_bytes())
    assert {(kid, unit) for _, kid, unit in arrived} == {(our_kid, "hubei-amr")}
    assert [rid for rid, _, _ in arrived] == sorted(r.record_id for r in outbox_rows(prov.db))
    assert outbox_states(prov.db) == {outbox.DELIVERED: 6}
    # What a platform was pushed is not pushed on, nor back: no echo.
    assert outbox_states(nat.db) == {outbox.DELIVERED: 2}
    assert count_pushed(prov.db, NATIONAL) == 2
    assert count_pushed(nat.db, PROVINCIAL) == 6
    # Every release is on record at the sender, under the delivery's method: once a try.
    sent_once_per_attempt(prov.db, "national")


def test_what_the_agreement_does_not_share_or_the_policy_withholds_is_never_sent(
    pair: Pair,
) -> None:
    prov, nat = pair.provincial, pair.national
    fresh = prov.records(1, subjects=1, prefix="fresh")
    # Queued (the item is shared) but past ADM.PUNISHMENT's 1,095-day disclosure period.
    stale = prov.records(1, subjects=1, prefix="stale", days_ago=1200)
    # REG.ENTERPRISE: no push agreement covers it, so it is never queued.
    prov.submit([*fresh, *stale, prov.registration("reg-1")])
    wait_until(lambda: settled(prov.db), 20, "for the delivery")
    rows = {r.state: r for r in outbox_rows(prov.db)}
    assert sorted(rows) == [outbox.DELIVERED, outbox.WITHHELD]
    assert rows[outbox.WITHHELD].last_error == "withheld by the policy (DISCLOSURE_PERIOD_ENDED)"
    assert [rid for rid, _, _ in pushed_from(nat.db, PROVINCIAL)] == [
        rows[outbox.DELIVERED].record_id
    ]
    # The withheld one's decision is on record too, releasing nothing.
    assert released_by_delivery(prov.db, "national") == [rows[outbox.DELIVERED].record_id]


def test_the_receiver_killed_mid_delivery_gets_every_record_exactly_once(
    tmp_path: Path, database_url: str, national_url: str
) -> None:
    n = 40
    with two_gateways(
        tmp_path, database_url, national_url, peers=False,
        # Small batches, so the kill falls mid-delivery; retries for as long as a restart takes.
        provincial={"outbox_batch": 2, "outbox_backoff_max_ms": 500, "outbox_max_attempts": 1000},
    ) as pair:  # fmt: skip
        prov, nat = pair.provincial, pair.national
        grpc_port, oauth = free_port(), free_port()
        receiver = serve_platform(nat, tmp_path, grpc_port, oauth)
        try:
            target = f"localhost:{grpc_port}"
            add_peer(prov, nat, pair.provincial_at_national, grpc_target=target, oauth_port=oauth)
            for start in range(0, n, 10):
                prov.submit(prov.records(10, subjects=5, prefix=f"k{start}"))
            wait_until(lambda: count_pushed(nat.db, PROVINCIAL) >= 1, 30, "for a first arrival")
            os.killpg(receiver.process.pid, signal.SIGKILL)  # mid-delivery, no goodbye
            receiver.process.wait(timeout=10)
            at_kill = count_pushed(nat.db, PROVINCIAL)
            print(f"records at the national platform when it was killed: {at_kill} of {n}")
            assert at_kill < n, "delivery ended before the kill: nothing was interrupted"
            receiver.close()
            receiver = serve_platform(nat, tmp_path, grpc_port, oauth)
            wait_until(lambda: settled(prov.db), 60, "for delivery after the restart")
        finally:
            receiver.close()
        assert outbox_states(prov.db) == {outbox.DELIVERED: n}
        arrived = [rid for rid, _, _ in pushed_from(nat.db, PROVINCIAL)]
        assert sorted(arrived) == sorted(r.record_id for r in outbox_rows(prov.db))
        assert len(set(arrived)) == n


def test_a_peer_that_stays_down_goes_to_dead_letters_and_retry_sends_them(
    tmp_path: Path, database_url: str, national_url: str
) -> None:
    attempts = 3
    with two_gateways(
        tmp_path, database_url, national_url, peers=False,
        provincial={"outbox_max_attempts": attempts},
    ) as pair:  # fmt: skip
        prov, nat = pair.provincial, pair.national
        grpc_port, oauth = free_port(), free_port()  # nothing listens there yet
        target = f"localhost:{grpc_port}"
        assert (
            add_peer(prov, nat, pair.provincial_at_national, grpc_target=target, oauth_port=oauth)
            == 0
        )
        prov.submit(prov.records(5, subjects=2))
        wait_until(lambda: settled(prov.db), 30, "for the entries to die")
        dead = outbox_rows(prov.db, outbox.DEAD)
        assert len(dead) == 5
        assert all(r.attempts == attempts for r in dead)
        assert all(
            r.last_error.startswith(f"after {attempts} attempts: token endpoint") for r in dead
        )
        assert count_pushed(nat.db, PROVINCIAL) == 0
        receiver = serve_platform(nat, tmp_path, grpc_port, oauth)
        try:
            assert prov.outbox("retry", "--peer", "national") == 0
            wait_until(lambda: settled(prov.db), 30, "for the retried entries")
        finally:
            receiver.close()
        assert outbox_states(prov.db) == {outbox.DELIVERED: 5}
        assert count_pushed(nat.db, PROVINCIAL) == 5


def test_two_replicas_deliver_every_record_once(
    tmp_path: Path, database_url: str, national_url: str
) -> None:
    n = 60
    with two_gateways(tmp_path, database_url, national_url, provincial={"outbox_batch": 5}) as pair:
        prov, nat = pair.provincial, pair.national
        first = prov.harness
        # A second replica of the provincial gateway: the same home, certificates and database.
        second = start_harness(
            tmp_path / PROVINCIAL, prov.certs, first.settings.database_url, pair.clock,
            **{**DELIVERY, "outbox_batch": 5},
        )  # fmt: skip
        try:
            for start in range(0, n, 20):
                prov.submit(prov.records(20, subjects=8, prefix=f"p{start}"))
            wait_until(lambda: settled(prov.db), 60, "for the delivery")
        finally:
            second.close()
        assert outbox_states(prov.db) == {outbox.DELIVERED: n}
        assert count_pushed(nat.db, PROVINCIAL) == n
        # No record was sent by both: each released once per attempt, the failed ones too.
        sent_once_per_attempt(prov.db, "national")


# --- a lease lost in the middle of a send -----------------------------------------------------

MINUTE = timedelta(minutes=1)
IDLE = {"outbox_poll_ms": 3_600_000}  # serve's own worker never polls: the test's workers do


async def on_a_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def workers(pair: Pair, *holders: str, before_push: Callable[[], Awaitable[None]] | None = None):
    """Delivery workers of the provincial gateway, beside serve's, with real peer clients; the
    first's sends wait for `before_push` first."""
    gateway = pair.provincial.harness.gateway

    class Paused:
        def __init__(self, inner: Sender) -> None:
            self.inner = inner

        async def push(self, shipments: Sequence[Shipment]) -> Mapping[int, Acknowledgement]:
            if before_push is not None:
                await before_push()
            return await self.inner.push(shipments)

        async def close(self) -> None:
            await self.inner.close()

    def sender_for(paused: bool) -> SenderFor:
        def make(credentials: PeerCredentials) -> Sender:
            client = PeerClient(
                credentials, float(gateway.settings.peer_timeout_seconds), gateway.clock
            )
            return Paused(client) if paused else client

        return make

    return [
        Delivery(gateway, holder, sender_for(n == 0), random.random)
        for n, holder in enumerate(holders)
    ]


def test_a_lease_lost_mid_send_leaves_the_claimed_entries_to_that_send(
    tmp_path: Path, database_url: str, national_url: str
) -> None:
    """A send outlasts the lease (a slow peer: a send may take 2 x peer_timeout_seconds, more
    than outbox_lease_seconds); the replica that takes the lease meanwhile finds the entries
    in flight and sends nothing again."""
    n = 4
    with two_gateways(tmp_path, database_url, national_url, provincial=IDLE) as pair:
        prov, nat = pair.provincial, pair.national
        prov.submit(prov.records(n, subjects=1))  # one subject: one partition
        meanwhile: list[int] = []

        async def the_lease_runs_out_and_b_polls() -> None:
            pair.clock.advance(seconds=a.lease_time.total_seconds() + 1)
            meanwhile.append(await b.poll(on_a_thread))

        a, b = workers(pair, "replica-a", "replica-b", before_push=the_lease_runs_out_and_b_polls)

        async def scenario() -> int:
            try:
                return await a.poll(on_a_thread)
            finally:
                await a.close()
                await b.close()

        assert asyncio.run(scenario()) == n
        assert meanwhile == [0]  # b held the lease, and found nothing due
        assert outbox_states(prov.db) == {outbox.DELIVERED: n}
        assert count_pushed(nat.db, PROVINCIAL) == n
        sent_once_per_attempt(prov.db, "national")  # released once each: by a


def test_entries_a_dead_worker_claimed_are_due_again_once_its_send_could_not_still_be_going(
    tmp_path: Path, database_url: str, national_url: str
) -> None:
    n = 3
    with two_gateways(tmp_path, database_url, national_url, provincial=IDLE) as pair:
        prov, nat = pair.provincial, pair.national
        prov.submit(prov.records(n, subjects=1))
        a, b = workers(pair, "replica-a", "replica-b")
        (partition,) = a.due_partitions()
        assert a.lease(partition)
        claimed = a.prepare(partition)  # released and committed; then a dies before it sends
        assert claimed.claimed == n

        async def poll_b() -> int:
            try:
                return await b.poll(on_a_thread)
            finally:
                await b.close()

        pair.clock.advance(seconds=a.lease_time.total_seconds() + 1)
        assert b.due_partitions() == []  # a's lease ran out, its claim not yet
        pair.clock.advance(seconds=a.in_flight.total_seconds())
        assert asyncio.run(poll_b()) == n
        assert outbox_states(prov.db) == {outbox.DELIVERED: n}
        assert count_pushed(nat.db, PROVINCIAL) == n
        # Released twice each, on record: by a (never sent) and by b.
        assert Counter(released_by_delivery(prov.db, "national")) == {
            r.record_id: 2 for r in outbox_rows(prov.db)
        }


def test_two_claims_at_once_take_an_entry_once(
    tmp_path: Path, database_url: str, national_url: str
) -> None:
    """Two workers that both think they hold the partition (one's lease ran out while it
    claimed): the second claim waits on the first's rows and finds them no longer due."""
    with two_gateways(tmp_path, database_url, national_url, provincial=IDLE) as pair:
        prov = pair.provincial
        prov.submit(prov.records(3, subjects=1))
        db, now = prov.db, pair.clock.now
        (partition,) = workers(pair, "replica-a")[0].due_partitions()
        second: list[list[outbox.Entry]] = []

        def claim_second() -> None:
            with db.transaction() as session:
                second.append(outbox.claim(session, partition, 10, now, now + MINUTE))

        with db.transaction() as session:
            first = outbox.claim(session, partition, 10, now, now + MINUTE)
            racer = threading.Thread(target=claim_second)
            racer.start()
            racer.join(timeout=1)
            assert racer.is_alive()  # waiting on the first's rows (SQLite: on its writer)
        racer.join(timeout=10)
        assert len(first) == 3
        assert second == [[]]
