"""InquiryService.release() on a real database, every backend, without the gRPC server.

The SQL store (storage/release_store.py) behind the release flow: what one release reads and
writes, the audit entry it commits, a refusal committed before it is raised, the locked retry
after a counter moved, and exact counting when calls race for a consent's last use or for a
subject no call has named before.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select
from support.harness import CATALOG_FILE, COMPANY, PERSON, Clock

from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import catalog as catalog_store
from credit_gateway.adapters.storage import consents as consent_store
from credit_gateway.adapters.storage import records as record_store
from credit_gateway.adapters.storage import trust
from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.tables import (
    AuditEntryRow,
    Base,
    ConsentEventRow,
    ConsentRow,
    IdempotencyRow,
    QuotaUsageRow,
    SubjectRow,
)
from credit_gateway.cli.bootstrap import initialise
from credit_gateway.consent import tokens as consent_tokens
from credit_gateway.domain.agreements import Agreement, AgreementStatus, Operation, Quotas
from credit_gateway.domain.canonical import canonical_bytes
from credit_gateway.domain.catalog import Category, DisclosureLevel
from credit_gateway.domain.consent import Consent, ConsentStatus, ConsentTerms, artefact_bytes
from credit_gateway.domain.identifiers import SubjectKind
from credit_gateway.domain.ids import new_id
from credit_gateway.domain.participants import (
    Licence,
    Participant,
    ParticipantKind,
    ParticipantStatus,
)
from credit_gateway.domain.policy import Channel
from credit_gateway.domain.release import Reads, ReadState, Writes
from credit_gateway.errors import PermissionDenied, StorageError
from credit_gateway.exchange import agreements as signing
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.release import Inquiry, InquiryResult, InquiryService

AGENCY, AMR, AGREEMENT = "zx-credit", "hubei-amr", "agr-zx"
Row = TypeVar("Row", bound=Base)
STRANGER = "91110000600037341L"  # a company no call has named yet


@dataclass
class World:
    gateway: Gateway
    service: InquiryService
    clock: Clock

    @property
    def db(self) -> Database:
        return self.gateway.db

    def grant(self, max_uses: int = 5, uses: int = 0) -> str:
        """A consent of PERSON to the agency for ADM.PUNISHMENT; returns its token."""
        gw, now = self.gateway, self.clock.now
        terms = ConsentTerms(
            grantee=AGENCY,
            purpose_code="LOAN_APPROVAL",
            purpose_text="mortgage",
            item_codes=frozenset({"ADM.PUNISHMENT"}),
            categories=frozenset(),
            data_from=now - timedelta(days=365),
            data_to=now + timedelta(days=1),
            valid_from=now - timedelta(minutes=1),
            valid_until=now + timedelta(days=30),
            max_uses=max_uses,
        )
        with self.db.transaction() as session:
            subject = record_store.find_subject(session, gw.subject_lookup(PERSON))
            assert subject is not None
            consent = Consent(
                new_id("cns"), subject.id, terms, ConsentStatus.ACTIVE, 0, now, now, "real_name"
            )
            consent_store.insert_consent(
                session, gw.envelope, consent, artefact_bytes(PERSON, terms), None
            )
        if uses:
            with self.db.transaction() as session:
                row = session.get(ConsentRow, consent.id)
                assert row is not None
                row.uses = uses
        return consent_tokens.issue(gw.keyring, gw.settings.effective_issuer, consent)

    def authorized(self, token: str) -> Inquiry:
        return Inquiry(
            Channel.AUTHORIZED_INQUIRY,
            AGENCY,
            "credit-agency",
            "QueryAuthorized",
            PERSON,
            "LOAN_APPROVAL",
            ("ADM.PUNISHMENT",),
            AGREEMENT,
            token,
        )

    def open(self, subject: str = COMPANY) -> Inquiry:
        return Inquiry(
            Channel.OPEN_INQUIRY,
            AGENCY,
            "credit-agency",
            "QueryOpen",
            subject,
            "LOAN_APPROVAL",
            ("ADM.PUNISHMENT", "ADM.PERMIT"),
            AGREEMENT,
        )

    def rows(self, table: type[Row]) -> list[Row]:
        with self.db.transaction(write=False) as session:
            return list(session.scalars(select(table)))

    def consent(self) -> tuple[str, int]:
        (row,) = self.rows(ConsentRow)
        return row.status, row.uses

    def usage(self) -> tuple[int, int]:
        (row,) = self.rows(QuotaUsageRow)
        return row.calls, row.records

    def audit(self) -> list[AuditEntryRow]:
        with self.db.transaction(write=False) as session:
            return list(session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)))


@pytest.fixture
def world(db: Database, database_url: str, tmp_path: Path, certs_dir: Path, clock: Clock) -> World:
    settings = Settings.load(
        environ={},
        home=tmp_path / "var",
        certs_dir=certs_dir,
        database_url=database_url,
        grpc_address="127.0.0.1:0",
        oauth_address="127.0.0.1:50444",
    )
    initialise(settings)  # keys into the emptied database
    gateway = Gateway(settings, db=db, clock=clock)
    now = clock.now
    with db.transaction() as session:
        catalog_store.store_catalog(session, json.loads(CATALOG_FILE.read_text()), now)
        for pid, kind, org in (
            (AGENCY, ParticipantKind.CREDIT_AGENCY, "91420100000000019Q"),
            (AMR, ParticipantKind.PROVIDING_UNIT, "91420100000000027K"),
        ):
            licence = Licence("CSL-1", now + timedelta(days=365))
            participant = Participant(
                pid, kind, org, pid, ParticipantStatus.ACTIVE, frozenset(), licence
            )
            trust.add_participant(session, participant, {"keys": []}, [], now)
        agreement = Agreement(
            AGREEMENT,
            AGENCY,
            frozenset({Operation.INQUIRY}),
            frozenset(),
            frozenset(Category),
            frozenset({"LOAN_APPROVAL"}),
            frozenset({DisclosureLevel.OPEN, DisclosureLevel.AUTHORIZED}),
            frozenset(SubjectKind),
            Quotas(1000, 10_000),
            now - timedelta(days=1),
            now + timedelta(days=365),
        )
        document = json.dumps(signing.draft(agreement)).encode()
        agreement_store.register_agreement(session, agreement, document, now)
    for n, (code, subject_kind, item, seal) in enumerate(
        [
            (PERSON, SubjectKind.NATURAL_PERSON, "ADM.PUNISHMENT", True),
            (PERSON, SubjectKind.NATURAL_PERSON, "TAX.ARREARS", True),
            (COMPANY, SubjectKind.LEGAL_PERSON, "ADM.PUNISHMENT", False),
            (COMPANY, SubjectKind.LEGAL_PERSON, "ADM.PERMIT", False),
        ]
    ):
        with db.transaction() as session:
            subject = record_store.ensure_subject(
                session, gateway.envelope, gateway.subject_lookup(code), code, subject_kind, now
            )
            payload = canonical_bytes({"n": n, "item": item})
            record = record_store.NewRecord(
                AMR,
                f"amr-{n}",
                item,
                subject.id,
                now - timedelta(days=5, minutes=n),
                hashlib.sha256(payload).hexdigest(),
                payload,
                b"signature",
                "kid",
                None,
                seal,
            )
            record_store.insert_record(session, gateway.envelope, record, now)
    return World(gateway, InquiryService(gateway), clock)


def race(callers: int, call: Callable[[], object]) -> Counter[object]:
    """`callers` threads released at once, each making `call`; what each got, counted."""
    barrier = threading.Barrier(callers)
    outcomes: Counter[object] = Counter()
    lock = threading.Lock()

    def one() -> None:
        barrier.wait(timeout=30)
        try:
            outcome: object = call()
        except PermissionDenied as exc:
            outcome = exc.reason
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=one) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


# --- one release --------------------------------------------------------------------------------


def test_a_consented_release_opens_counts_and_commits_its_canonical_entry(world: World) -> None:
    token = world.grant()
    answer = world.service.release(world.authorized(token))
    (released,) = answer.released
    assert released.item_code == "ADM.PUNISHMENT"
    assert json.loads(released.payload) == {"n": 0, "item": "ADM.PUNISHMENT"}  # opened
    assert released.occurred_at == world.clock.now - timedelta(days=5)
    assert answer.consent_id is not None
    assert world.consent() == ("active", 1)
    assert world.usage() == (1, 1)
    (entry,) = world.audit()
    assert entry.id == answer.inquiry_id
    assert (entry.outcome, entry.consent_id, entry.agreement_id) == (
        "RELEASED",
        answer.consent_id,
        AGREEMENT,
    )
    body = json.loads(entry.body)
    assert canonical_bytes(body) == entry.body
    assert entry.leaf_hash == hashlib.sha256(b"\x00" + entry.body).digest()
    assert body["released"] == [released.record_id]
    assert body["at"] == world.clock.now.isoformat().replace("+00:00", "Z")


def test_an_open_release_of_clear_payloads(world: World) -> None:
    answer = world.service.release(world.open())
    assert [r.item_code for r in answer.released] == ["ADM.PERMIT", "ADM.PUNISHMENT"]
    assert [json.loads(r.payload)["n"] for r in answer.released] == [3, 2]
    assert world.usage() == (1, 2)
    assert [e.outcome for e in world.audit()] == ["RELEASED"]


def test_an_inquiry_into_a_new_subject_records_it(world: World) -> None:
    answer = world.service.release(world.open(STRANGER))
    assert answer.released == ()
    subjects = {s.lookup: s.id for s in world.rows(SubjectRow)}
    new = subjects[world.gateway.subject_lookup(STRANGER)]
    assert [e.subject_id for e in world.audit()] == [new]


def test_a_refusal_is_committed_then_raised_and_counts_nothing(world: World) -> None:
    token = world.grant()
    with world.db.transaction() as session:
        agreement_store.set_agreement_status(session, AGREEMENT, AgreementStatus.SUSPENDED)
    with pytest.raises(PermissionDenied) as caught:
        world.service.release(world.authorized(token))
    assert caught.value.reason == "AGREEMENT_SUSPENDED"
    (entry,) = world.audit()
    assert entry.outcome == "REFUSED"
    assert json.loads(entry.body)["reasons"] == ["AGREEMENT_SUSPENDED"]
    assert world.consent() == ("active", 0)
    assert world.usage() == (0, 0)


def test_the_last_use_exhausts_the_consent_with_its_event(world: World) -> None:
    token = world.grant(max_uses=2, uses=1)
    world.service.release(world.authorized(token))
    assert world.consent() == ("exhausted", 2)
    (event,) = world.rows(ConsentEventRow)[1:]  # after the grant's own
    assert (event.from_status, event.to_status, event.actor) == ("active", "exhausted", AGENCY)
    with pytest.raises(PermissionDenied) as caught:
        world.service.release(world.authorized(token))
    assert caught.value.reason == "CONSENT_EXHAUSTED"


# --- a counter moved: rolled back, decided again under locks ------------------------------------


class Mispredicting:
    """The real store, but the first attempt's consent use is written as the last one: its
    conditional UPDATE finds no such row, as when a racing call has moved the counter."""

    def __init__(self, store: object) -> None:
        self.store = store
        self.attempts: list[Reads] = []

    def ensure_usage_row(self, *args: object) -> None:
        self.store.ensure_usage_row(*args)  # type: ignore[attr-defined]

    def release(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
        self.attempts.append(reads)

        def wrong(state: ReadState) -> Writes:
            writes = decide(state)
            assert writes.consent_use is not None
            return replace(writes, consent_use=replace(writes.consent_use, last=True))

        ok: bool = self.store.release(  # type: ignore[attr-defined]
            reads, decide if reads.locked else wrong
        )
        return ok


def test_a_moved_counter_rolls_the_attempt_back_and_the_locked_one_counts(world: World) -> None:
    token = world.grant(max_uses=5)
    store = world.service.store = Mispredicting(world.service.store)  # type: ignore[assignment]
    world.service.release(world.authorized(token))
    assert [r.locked for r in store.attempts] == [False, True]
    assert world.consent() == ("active", 1)  # counted once: the first attempt rolled back
    assert world.usage() == (1, 1)
    assert len(world.audit()) == 1


def overtaken_by(world: World, rival: Callable[[], object]) -> list[bool]:
    """The service's store from now on runs `rival` between an unlocked attempt's reads and its
    writes (a racing call that commits in that window); answers each attempt's `locked`."""
    store = world.service.store
    attempts: list[bool] = []

    class Overtaken:
        def ensure_usage_row(self, *args: object) -> None:
            store.ensure_usage_row(*args)  # type: ignore[arg-type]

        def release(self, reads: Reads, decide: Callable[[ReadState], Writes]) -> bool:
            attempts.append(reads.locked)

            def overtaken(state: ReadState) -> Writes:
                rival()
                return decide(state)

            return store.release(reads, decide if reads.locked else overtaken)

    world.service.store = Overtaken()  # type: ignore[assignment]
    return attempts


def test_a_use_taken_between_our_read_and_our_write_is_decided_again(
    world: World, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite's write transaction holds the database from the first read")
    token = world.grant(max_uses=1)
    rival = InquiryService(world.gateway)
    # The rival commits the last use meanwhile.
    attempts = overtaken_by(world, lambda: rival.release(world.authorized(token)))
    with pytest.raises(PermissionDenied) as caught:
        world.service.release(world.authorized(token))
    assert caught.value.reason == "CONSENT_EXHAUSTED"
    assert attempts == [False, True]
    assert world.consent() == ("exhausted", 1)
    assert [e.outcome for e in world.audit()] == ["RELEASED", "REFUSED"]


# --- racing calls --------------------------------------------------------------------------------


@pytest.mark.parametrize("used_before", [0, 1], ids=["first-use", "after-one-use"])
def test_of_20_racing_calls_for_the_last_use_exactly_one_is_released(
    world: World, used_before: int
) -> None:
    token = world.grant(max_uses=used_before + 1, uses=used_before)
    inquiry = world.authorized(token)
    world.service.release(world.open())  # today's usage row, made ahead as for any call
    outcomes = race(20, lambda: len(world.service.release(inquiry).released))
    assert outcomes == {1: 1, "CONSENT_EXHAUSTED": 19}
    assert world.consent() == ("exhausted", used_before + 1)
    assert len(world.rows(ConsentEventRow)) == 2  # the grant, and the exhaustion once
    race_entries = [e.outcome for e in world.audit()][1:]
    assert sorted(race_entries) == ["REFUSED"] * 19 + ["RELEASED"]
    assert world.usage() == (2, 3)  # the open call (2 records) and the one release


def test_racing_first_inquiries_into_a_subject_all_name_one_subject(world: World) -> None:
    outcomes = race(10, lambda: len(world.service.release(world.open(STRANGER)).released))
    assert outcomes == {0: 10}
    lookup = world.gateway.subject_lookup(STRANGER)
    (made,) = [s for s in world.rows(SubjectRow) if s.lookup == lookup]
    assert {e.subject_id for e in world.audit()} == {made.id}
    assert len(world.audit()) == 10


# --- the store's edges ---------------------------------------------------------------------------


def test_a_driver_error_leaves_as_storage_error_and_the_connection_stays_usable(
    world: World,
) -> None:
    with pytest.raises(StorageError, match="database error"), world.db.driver_transaction() as c:
        c.execute("SELECT no_such_column FROM audit_entries")
    assert world.service.release(world.open()).released  # the pool's connections still work


def test_a_connection_the_server_dropped_fails_one_call_and_is_replaced(
    world: World, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("no server to drop the connection")
    world.service.release(world.open())
    pinned = world.db._writers.get()  # this thread's transaction connection
    query = "SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()"
    driver = pinned.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    cursor.execute(query)
    (pid,) = cursor.fetchone()
    driver.commit()
    kill = f"SELECT pg_terminate_backend({pid})" if backend == "postgresql" else f"KILL {pid}"
    with world.db.engine.connect() as admin:
        admin.exec_driver_sql(kill)
        admin.commit()
    with pytest.raises(StorageError):  # not retried: a write might have reached the server
        world.service.release(world.open())
    assert world.service.release(world.open()).released  # on a new connection
    assert world.db._writers.get() is not pinned
    assert [e.outcome for e in world.audit()] == ["RELEASED", "RELEASED"]


def test_each_thread_transacts_on_its_own_connection_replaced_when_old(world: World) -> None:
    seen: list[object] = []

    def release() -> None:
        world.service.release(world.open())
        seen.append(world.db._writers.get())

    threads = [threading.Thread(target=release) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 3
    release()
    first = seen[-1]
    world.db._writers._recycle = 0  # every connection is too old now
    world.service.release(world.open())
    world.db._writers._recycle = 300
    assert world.db._writers.get() is not first  # the release ran on a new one
    assert len(world.audit()) == 5


# --- SQLite: the release on the event loop ------------------------------------------------------


def on_loop(world: World) -> InquiryResult | None:
    return asyncio.run(world.service.release_on_loop(world.open()))


def test_release_on_loop_is_the_same_release_made_on_the_calling_thread(
    world: World, backend: str
) -> None:
    if backend != "sqlite":
        assert on_loop(world) is None  # network I/O: a thread's job
        assert world.audit() == []
        return
    answer = on_loop(world)
    assert answer is not None
    assert [r.item_code for r in answer.released] == ["ADM.PERMIT", "ADM.PUNISHMENT"]
    assert [e.id for e in world.audit()] == [answer.inquiry_id]
    assert world.usage() == (1, 2)


def test_release_on_loop_waits_for_a_thread_holding_the_writer_without_a_thread_of_its_own(
    world: World, backend: str
) -> None:
    """While a database thread of this process holds the writer (the integrator), the release
    waits on the loop, which keeps running other work meanwhile, and writes once it is free."""
    if backend != "sqlite":
        pytest.skip("only SQLite's writer runs on the event loop")
    lock = world.db._writer_lock
    assert lock is not None

    async def scenario() -> tuple[InquiryResult | None, list[str]]:
        lock.acquire()
        release = asyncio.create_task(world.service.release_on_loop(world.open()))
        await asyncio.sleep(0.05)
        written_while_held = [e.id for e in world.audit()]  # the loop is not blocked
        assert not release.done()
        threading.Thread(target=lock.release).start()  # as the integrator lets go
        return await asyncio.wait_for(release, 5), written_while_held

    answer, while_held = asyncio.run(scenario())
    assert while_held == []
    assert answer is not None
    assert [e.id for e in world.audit()] == [answer.inquiry_id]


def test_release_on_loop_leaves_another_processs_writer_to_a_thread_and_writes_nothing(
    world: World, backend: str, database_url: str
) -> None:
    """Another process holding SQLite's lock: None at once (no busy wait on the loop), nothing
    written; release() on a database thread then waits its turn under the busy timeout."""
    if backend != "sqlite":
        pytest.skip("only SQLite's writer runs on the event loop")
    import sqlite3

    other = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's writer
        started = time.monotonic()
        assert on_loop(world) is None
        assert time.monotonic() - started < 0.5
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert world.audit() == []
    answer = on_loop(world)  # the writer is free again
    assert answer is not None
    assert [e.id for e in world.audit()] == [answer.inquiry_id]


# --- idempotency keys (issue #11 item 16) --------------------------------------------------------


def keyed(inquiry: Inquiry, key: str = "retry-1") -> Inquiry:
    return replace(inquiry, idempotency_key=key)


def test_of_10_racing_calls_with_one_key_one_releases_and_the_rest_replay_it(
    world: World,
) -> None:
    token = world.grant(max_uses=5)
    inquiry = keyed(world.authorized(token))
    world.service.release(world.open())  # today's usage row, made ahead as for any call
    outcomes = race(10, lambda: world.service.release(inquiry).inquiry_id)
    ((inquiry_id, n),) = outcomes.items()
    assert n == 10
    assert world.consent() == ("active", 1)
    assert world.usage() == (2, 3)  # the open call and the one release
    entries = world.audit()[1:]
    assert sorted(e.outcome for e in entries) == ["RELEASED"] + ["REPLAYED"] * 9
    assert {e.id for e in entries if e.outcome == "RELEASED"} == {inquiry_id}
    assert all(json.loads(e.body)["reasons"] == [inquiry_id] for e in entries[1:])


def test_a_key_recorded_between_our_read_and_our_write_is_answered_from_its_record(
    world: World, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite's write transaction holds the database from the first read")
    token = world.grant(max_uses=5)
    inquiry = keyed(world.authorized(token))
    rival = InquiryService(world.gateway)
    rivals: list[str] = []
    # The rival records the key meanwhile.
    attempts = overtaken_by(world, lambda: rivals.append(rival.release(inquiry).inquiry_id))
    answer = world.service.release(inquiry)
    assert attempts == [False, True]
    assert [answer.inquiry_id] == rivals
    assert world.consent() == ("active", 1)
    assert [e.outcome for e in world.audit()] == ["RELEASED", "REPLAYED"]


def test_recorded_answers_past_their_retention_are_purged(world: World) -> None:
    token = world.grant(max_uses=5)
    world.service.release(keyed(world.authorized(token), "old"))
    world.clock.advance(hours=23)
    world.service.release(keyed(world.authorized(token), "recent"))
    world.clock.advance(hours=1)
    assert world.service.store.purge_idempotency(world.clock.now - timedelta(hours=24)) == 1
    assert [r.idem_key for r in world.rows(IdempotencyRow)] == ["recent"]
