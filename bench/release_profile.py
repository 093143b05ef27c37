"""The release path in process: µs per `InquiryService.release()` against the raw driver.

Sets up a gateway database with the bench's data (bench/run.py: its catalog, participants and
agreement; six signed ADM.PERMIT records, three about a person; the person's consent), then
times, on SQLite and on PostgreSQL (a fresh database, dropped afterwards):

- `release()` of the consented inquiry (QueryAuthorized, 3 records released) and of the open
  one (QueryOpen, 3 open records), called in this process, one after another;
- the raw release transaction, the baseline: a release's statements through the raw driver
  (sqlite3, psycopg) as they were written one by one before the release store folded them:
  BEGIN, the subject and its records, the agreement and today's usage, the consent, the audit
  INSERT (a body of an entry's size), the conditional UPDATEs of the usage and of the
  consent's uses, COMMIT (eight round trips on PostgreSQL); no Python work but the calls.

Rounds of the three alternate, so a neighbour's load falls on all alike; each figure is the
best round's. Prints µs per call (wall, and this process's CPU) and the ratios; `--profile`
adds a cProfile top-20 of the consented release. Not a test: nothing here asserts; it prints.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import itertools
import pstats
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from run import COMPANY, PERSON, bench_pki, postgres_database, prepare_gateway, signed_records

from credit_gateway.adapters.grpc.submission import incoming
from credit_gateway.consent.service import ConsentService
from credit_gateway.domain.catalog import Category
from credit_gateway.domain.consent import ConsentTerms
from credit_gateway.domain.policy import Channel
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.release import Inquiry, InquiryService
from credit_gateway.services.submission import SubmissionService

AGREEMENT = "agr-bench"
AUDIT_BODY = 300  # bytes: about the size of a consented release's audit entry


@dataclass
class Setup:
    gateway: Gateway
    authorized: Inquiry
    open: Inquiry
    consent_id: str


def setup(work: Path, database_url: str) -> Setup:
    certs, parties = bench_pki(work)
    config = prepare_gateway(work, certs, database_url, parties)
    gateway = Gateway(Settings.load(config, environ={}))
    records = [incoming(r) for r in signed_records(parties["bench-amr"], 6, "seed")]
    outcomes = SubmissionService(gateway).submit("bench-amr", records)
    if any(o.outcome != "ACCEPTED" for o in outcomes):
        raise SystemExit(f"bench records were not all accepted: {outcomes}")
    now = datetime.now(UTC)
    terms = ConsentTerms(
        grantee="bench-agency",
        purpose_code="BENCHMARK",
        purpose_text="load test",
        item_codes=frozenset({"ADM.PERMIT"}),
        categories=frozenset[Category](),
        data_from=now - timedelta(days=3650),
        data_to=now + timedelta(days=1),
        valid_from=now - timedelta(minutes=1),
        valid_until=now + timedelta(days=1),
        max_uses=100_000_000,
    )
    granted = ConsentService(gateway).grant(PERSON, terms, b"", "")
    agency = ("bench-agency", "credit-agency")
    authorized = Inquiry(
        Channel.AUTHORIZED_INQUIRY,
        *agency,
        "QueryAuthorized",
        PERSON,
        "BENCHMARK",
        ("ADM.PERMIT",),
        AGREEMENT,
        granted.token,
    )
    open_ = Inquiry(Channel.OPEN_INQUIRY, *agency, "QueryOpen", COMPANY, "BENCHMARK", (), AGREEMENT)
    service = InquiryService(gateway)
    for inquiry in (authorized, open_):
        released = len(service.release(inquiry).released)
        if released != 3:
            raise SystemExit(f"{inquiry.method} released {released} records, not 3")
    return Setup(gateway, authorized, open_, granted.consent.id)


# --- the raw release transaction ----------------------------------------------------------------

RawTarget = tuple[bytes, str]  # the subject's lookup key, the consent id
_RAW_IDS = itertools.count()  # shared by every thread's transaction (next() is atomic)
_RUN = secrets.token_hex(4)

_RAW_READS = (
    "SELECT s.id, s.kind, s.public_jwk, r.id, r.provider_id, r.item_code, r.occurred_at,"
    " r.payload_key_id, r.payload, r.state, r.labels FROM subjects s LEFT OUTER JOIN records r"
    " ON r.subject_id = s.id AND r.item_code IN ({p}) WHERE s.lookup = {p}",
    "SELECT a.document, a.status, u.calls, u.records FROM agreements a LEFT OUTER JOIN"
    " quota_usage u ON u.agreement_id = a.id AND u.day = {p} WHERE a.id = {p}",
    "SELECT * FROM consents WHERE id = {p}",
)
_RAW_WRITES = (
    "INSERT INTO audit_entries (id, at, caller, method, subject_id, consent_id, agreement_id,"
    " outcome, body, leaf_hash) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
    "UPDATE quota_usage SET calls = calls + 1, records = records + {p} WHERE agreement_id = {p}"
    " AND day = {p} AND calls < {p} AND records + {p} <= {p}",
    "UPDATE consents SET uses = uses + 1 WHERE id = {p} AND status = 'active'"
    " AND valid_from <= {p} AND valid_until > {p} AND uses + 1 < max_uses",
)


def raw_transaction(
    execute: Callable[[str, tuple[object, ...]], list[tuple[object, ...]]],
    statements: tuple[str, ...],
    begin: Callable[[], None],
    commit: Callable[[], None],
    target: RawTarget,
    stamp: Callable[[datetime], object],
    day: Callable[[datetime], object],
) -> Callable[[int], None]:
    lookup, consent_id = target
    body = b"x" * AUDIT_BODY
    read_subject, read_agreement, read_consent, insert_audit, count_usage, count_use = statements

    def one(_n: int) -> None:
        now = datetime.now(UTC)
        begin()
        rows = execute(read_subject, ("ADM.PERMIT", lookup))
        execute(read_agreement, (day(now), AGREEMENT))
        execute(read_consent, (consent_id,))
        subject_id = rows[0][0]
        execute(
            insert_audit,
            (
                f"inq-raw-{next(_RAW_IDS)}-{_RUN}",
                stamp(now),
                "bench-agency",
                "QueryAuthorized",
                subject_id,
                consent_id,
                AGREEMENT,
                "RELEASED",
                body,
                hashlib.sha256(b"\x00" + body).digest(),
            ),
        )
        execute(count_usage, (3, AGREEMENT, day(now), 10**9, 3, 10**9))
        execute(count_use, (consent_id, stamp(now), stamp(now)))
        commit()

    return one


@contextmanager
def raw_sqlite(path: str, target: RawTarget) -> Iterator[Callable[[int], None]]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000"):
        conn.execute(f"PRAGMA {pragma}")

    def execute(sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        return conn.execute(sql, params).fetchall()

    def begin() -> None:
        conn.execute("BEGIN IMMEDIATE")  # as the gateway's write transactions on SQLite

    statements = tuple(q.format(p="?") for q in _RAW_READS + _RAW_WRITES)
    try:
        yield raw_transaction(
            execute,
            statements,
            begin,
            conn.commit,
            target,
            lambda t: f"{t.replace(tzinfo=None):%Y-%m-%d %H:%M:%S.%f}",
            lambda t: t.date().isoformat(),
        )
    finally:
        conn.close()


@contextmanager
def raw_postgresql(url: str, target: RawTarget) -> Iterator[Callable[[int], None]]:
    import psycopg

    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    cursor = conn.cursor()

    def execute(sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    statements = tuple(q.format(p="%s") for q in _RAW_READS + _RAW_WRITES)
    try:
        # psycopg opens the transaction itself with the first statement (a BEGIN round trip).
        yield raw_transaction(
            execute,
            statements,
            lambda: None,
            conn.commit,
            target,
            lambda t: t.replace(tzinfo=None),
            lambda t: t.date(),
        )
    finally:
        conn.close()


def raw_release_handler(config: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    """The raw release transaction for bench/server.py's `raw-release` mode, against the
    gateway database `config` names (seeded by bench/run.py): a function that runs one, on a
    connection of the calling thread's own, and one that closes them all."""
    from sqlalchemy import text

    settings = Settings.load(config, environ={})
    gateway = Gateway(settings)
    with gateway.db.transaction(write=False) as session:
        consent_id = session.execute(
            text("SELECT id FROM consents WHERE grantee_id = 'bench-agency'")
        ).scalar_one()
    target = (gateway.subject_lookup(PERSON), str(consent_id))
    url = settings.effective_database_url
    local = threading.local()
    stack = ExitStack()
    lock = threading.Lock()

    def one() -> None:
        run = getattr(local, "run", None)
        if run is None:
            sqlite = url.startswith("sqlite")
            raw = raw_sqlite(url.removeprefix("sqlite:///"), target) if sqlite else None
            with lock:
                run = local.run = stack.enter_context(raw or raw_postgresql(url, target))
        run(0)

    def close() -> None:
        stack.close()
        gateway.close()

    return one, close


# --- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    wall_us: float
    cpu_us: float


def timed(calls: int, one: Callable[[int], object]) -> Timing:
    for n in range(max(50, calls // 10)):  # warm caches, statements and the usage row
        one(-n - 1)
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(calls):
        one(n)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Timing(wall / calls * 1e6, cpu / calls * 1e6)


def measure(backend: str, url: str, work: Path, calls: int, profile: bool, sort: str) -> None:
    s = setup(work, url)
    service = InquiryService(s.gateway)
    target = (s.gateway.subject_lookup(PERSON), s.consent_id)
    raw = raw_sqlite(url.removeprefix("sqlite:///"), target) if backend == "sqlite" else None
    rounds = 5
    paths: dict[str, Callable[[int], object]] = {
        "raw release transaction (driver only)": lambda _n: None,
        "release(), QueryAuthorized, 3 records": lambda _n: service.release(s.authorized),
        "release(), QueryOpen, 3 open records": lambda _n: service.release(s.open),
    }
    timings: dict[str, list[Timing]] = {name: [] for name in paths}
    with raw or raw_postgresql(url, target) as raw_one:
        paths["raw release transaction (driver only)"] = raw_one
        for _ in range(rounds):
            for name, one in paths.items():
                timings[name].append(timed(calls // rounds, one))
    raw_t, auth_t, _ = (best(t) for t in timings.values())
    print(f"\n[{backend}] {calls} calls each, best of {rounds} rounds, µs per call")
    print(f"  {'':<48} {'wall':>8} {'cpu':>8} {'wall/raw':>9}")
    for name, found in timings.items():
        t = best(found)
        print(f"  {name:<48} {t.wall_us:>8.0f} {t.cpu_us:>8.0f} {t.wall_us / raw_t.wall_us:>9.2f}")
    print(f"  release() rate vs raw: {raw_t.wall_us / auth_t.wall_us:.2f}")
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            service.release(s.authorized)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(20)
        print(f"\n[{backend}] cProfile of {calls} consented releases, top 20 by {sort}")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    s.gateway.close()


def best(timings: list[Timing]) -> Timing:
    return min(timings, key=lambda t: t.wall_us)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per measurement")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite,postgresql")
    parser.add_argument("--profile", action="store_true", help="cProfile top-20 as well")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cg-release-"))
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                (work / "sqlite").mkdir()
                url = f"sqlite:///{work / 'sqlite' / 'gateway.db'}"
                measure("sqlite", url, work / "sqlite", args.calls, args.profile, args.sort)
            elif backend == "postgresql":
                with postgres_database() as pg_url:
                    if pg_url:
                        (work / "postgresql").mkdir()
                        measure(
                            backend,
                            pg_url,
                            work / "postgresql",
                            args.calls,
                            args.profile,
                            args.sort,
                        )
            else:
                raise SystemExit(f"unknown backend {backend!r}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
