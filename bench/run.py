"""`make bench`: the gateway's hot paths against bare baselines, in one run.

Every figure comes from the same load generator (bench/load.py, its own process, 64 calls in
flight unless said) against servers in their own processes (bench/server.py), and is reported as
a ratio to a baseline measured in the same run: the bare grpc.aio mTLS echo for every call, the
raw release transaction of the same database for the release path, a bare "hello" on the same
HTTP server for tokens. The targets of the issues are printed beside the ratios they judge. Not
a test: nothing here asserts; it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import audit_log  # bench/audit_log.py, beside this file
import exchange  # bench/exchange.py, beside this file
import grpc
from sqlalchemy import create_engine, text

from credit_gateway.adapters.grpc import client
from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import (
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2,
    submission_pb2_grpc,
)
from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import catalog as catalog_store
from credit_gateway.adapters.storage import trust
from credit_gateway.auth.scopes import PrincipalKind
from credit_gateway.cli.bootstrap import initialise
from credit_gateway.devpki import pki
from credit_gateway.domain.records import Submission
from credit_gateway.exchange import agreements as signing
from credit_gateway.runtime import tls
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services import operator as registry

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COMPANY, PERSON = "91350100M000100Y43", "11010519491231002X"
OTHER = "91110000600037341L"  # the submission stream's subject
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    mode: str, arg: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """A bench/server.py process; yields its port and, once it stopped, its stats (the
    gateway's OAuth port is in stats["oauth_port"] from the start, its pid in stats["pid"])."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), mode, str(arg)],
        stdout=subprocess.PIPE,
        text=True,
        # The gateway's own settings may be tried from the environment (e.g. the worker count).
        env={
            "GRPC_VERBOSITY": "ERROR",
            "PATH": "/usr/bin:/bin",
            **{k: v for k, v in os.environ.items() if k.startswith("CREDIT_GATEWAY_")},
            **(env or {}),
        },
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if not line or line[0] != "READY":
        process.kill()
        raise SystemExit(f"{mode} server did not start")
    stats: dict[str, Any] = {"pid": process.pid}
    if len(line) > 2:
        stats["oauth_port"] = int(line[2])
    try:
        yield int(line[1]), stats
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
        stats.update(json.loads(out.strip().splitlines()[-1]) if out.strip() else {})


class Load:
    def __init__(self, certs: Path, client: pki.IssuedCert, seconds: float, workdir: Path) -> None:
        self.certs, self.client, self.seconds, self.workdir = certs, client, seconds, workdir

    def _args(self, mode: str, target: str, client: pki.IssuedCert | None) -> list[str]:
        client = client or self.client
        return [
            sys.executable,
            str(HERE / "load.py"),
            mode,
            "--target",
            target,
            "--ca",
            str(self.certs / "ca.pem"),
            "--cert",
            str(client.cert_path),
            "--key",
            str(client.key_path),
            "--seconds",
            str(self.seconds),
        ]

    def run(
        self,
        mode: str,
        port: int,
        method: str,
        request: bytes | str,
        token: str = "",
        client: pki.IssuedCert | None = None,
        concurrency: int = 64,
        target: str = "",
        options: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        path = self.workdir / f"request-{secrets.token_hex(4)}"
        path.write_bytes(request) if isinstance(request, bytes) else path.write_text(request)
        args = self._args(mode, target or f"localhost:{port}", client)
        args += ["--method", method, "--request", str(path), "--concurrency", str(concurrency)]
        args += options
        if token:
            args += ["--token", token]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"load generator failed on {method}:\n{result.stderr[-2000:]}")
        return dict(json.loads(result.stdout))

    @contextmanager
    def hold(self, port: int, streams: int, certs_dir: Path) -> Iterator[None]:
        """`streams` open Health.Watch streams from the certificates in `certs_dir`."""
        args = self._args("hold", f"localhost:{port}", None)
        args += ["--streams", str(streams), "--certs-dir", str(certs_dir)]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        if process.stdout.readline().strip() != "OPEN":
            process.kill()
            raise SystemExit("the stream holder did not open its streams")
        try:
            yield
        finally:
            process.terminate()
            process.communicate(timeout=60)


def rss_mib(pid: int) -> float:
    """A process's resident memory now (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, user and system, every thread (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server_cpu(pid: int, result: dict[str, Any], records: int) -> Iterator[None]:
    """The server's CPU µs a record while the block runs, into result["cpu_us"]: steadier than
    wall time on a shared machine, and what the GIL-bound push is short of."""
    before = cpu_seconds(pid)
    yield
    result["cpu_us"] = round((cpu_seconds(pid) - before) / records * 1e6)


def prepare_gateway(
    work: Path, certs: Path, database_url: str, parties: dict[str, pki.IssuedCert]
) -> Path:
    """Keys, schema, catalog (+ a BENCHMARK purpose), participants and a signed agreement."""
    config = work / "gateway.toml"
    config.write_text(
        f'home = "{work / "var"}"\ncerts_dir = "{certs}"\ndatabase_url = "{database_url}"\n'
        f'grpc_address = "127.0.0.1:0"\noauth_address = "127.0.0.1:{free_port()}"\n'
        'access_token_ttl_seconds = 3600\nlog_level = "WARNING"\n'
    )
    settings = Settings.load(config, environ={})
    initialise(settings)
    catalog = json.loads((ROOT / "src/credit_gateway/data/catalog.json").read_text())
    catalog["version"] += "-bench"
    for item in catalog["items"]:  # the bench's providing unit submits ADM.PERMIT records
        if item["code"] == "ADM.PERMIT":
            item["providers"].append("bench-amr")
    catalog["purposes"].append(
        {
            "code": "BENCHMARK",
            "title": "Load test",
            "max_validity_days": 2,
            "max_data_range_days": 36500,
            "max_uses": 100_000_000,
        }
    )
    now = datetime.now(UTC)
    gateway = Gateway(settings)
    with gateway.db.transaction() as session:
        catalog_store.store_catalog(session, catalog, now)
    for name, (kind, code) in {
        "bench-agency": ("credit-agency", "91420100000000019Q"),
        "bench-amr": ("providing-unit", "91420100000000027K"),
        "bench-portal": ("identity-provider", "91420100000000035E"),
        exchange.NATIONAL: ("national-platform", exchange.NATIONAL_CODE),
    }.items():
        registry.add_participant(
            settings,
            participant_id=name,
            kind=kind,
            org_code=code,
            name=name,
            certificates=[parties[name].cert_path],
            licence=("LIC-1", now + timedelta(days=365)) if kind == "credit-agency" else None,
        )
    from credit_gateway.domain.agreements import Agreement, Operation, Quotas
    from credit_gateway.domain.catalog import Category, DisclosureLevel
    from credit_gateway.domain.identifiers import SubjectKind

    agreement = Agreement(
        "agr-bench",
        "bench-agency",
        frozenset({Operation.INQUIRY}),
        frozenset(),
        frozenset(Category),
        frozenset({"BENCHMARK"}),
        frozenset({DisclosureLevel.OPEN, DisclosureLevel.AUTHORIZED}),
        frozenset(SubjectKind),
        Quotas(10**9, 10**9),
        now - timedelta(days=1),
        now + timedelta(days=2),
    )
    register_agreement(settings, gateway, agreement, parties["bench-agency"], now)
    national = exchange.agreement(now)
    register_agreement(settings, gateway, national, parties[exchange.NATIONAL], now)
    gateway.close()
    return config


def register_agreement(
    settings: Settings, gateway: Gateway, agreement: Any, party: pki.IssuedCert, now: datetime
) -> None:
    """The agreement signed by the center and its counterparty (`party`'s key), registered."""
    operator_key = signing.load_private_key(settings.operator_key_file)
    document = signing.sign(signing.draft(agreement), "center", operator_key)
    counterparty = agreement.counterparty
    document = signing.sign(document, counterparty, signing.load_private_key(party.key_path))
    with gateway.db.transaction() as session:
        verified = signing.verify(
            document,
            operator_key.public_key(),
            trust.participant_jwks(session, counterparty),
            now,
        )
        agreement_store.register_agreement(session, verified, json.dumps(document).encode(), now)


def tokens(config: Path, parties: dict[str, pki.IssuedCert]) -> dict[str, str]:
    gateway = Gateway(Settings.load(config, environ={}))
    now = datetime.now(UTC)
    out = {}
    for name, scopes in {
        "bench-agency": ["inquiry.open", "inquiry.authorized"],
        "bench-amr": ["submission.write"],
        exchange.NATIONAL: exchange.SCOPES,
    }.items():
        out[name] = gateway.token_issuer.issue(
            client_id=name,
            subject=name,
            kind=PrincipalKind.PARTICIPANT,
            scopes=scopes,
            cnf_x5t=parties[name].x5t_s256,
            now=now,
        )[0]
    out["subject"] = gateway.token_issuer.issue(
        client_id="bench-portal",
        subject=PERSON,
        kind=PrincipalKind.SUBJECT,
        scopes=["subject.consent", "subject.self"],
        cnf_x5t=parties["bench-portal"].x5t_s256,
        now=now,
    )[0]
    gateway.close()
    return out


def signed_records(
    unit: pki.IssuedCert, count: int, prefix: str, subjects: tuple[str, ...] = (PERSON, COMPANY)
) -> list[submission_pb2.SubmittedRecord]:
    key = signing.load_private_key(unit.key_path)
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    records = []
    for i in range(count):
        subject = subjects[i % len(subjects)]
        payload = {
            "permit_no": f"{prefix}-{i}",
            "permit_type": "food trading",
            "authority": "Wuhan AMR",
        }
        s = Submission("bench-amr", f"{prefix}-{i}", "ADM.PERMIT", subject, payload, occurred, None)
        records.append(client.signed_record(s, key, unit.x5t_s256))
    return records


def channel(port: int, certs: Path, party: pki.IssuedCert) -> grpc.Channel:
    """A sync mTLS channel to the gateway as `party`, for the calls around the measurements."""
    credentials = tls.grpc_channel_credentials(certs / "ca.pem", party.cert_path, party.key_path)
    return grpc.secure_channel(f"localhost:{port}", credentials)


def seed(port: int, certs: Path, parties: dict[str, pki.IssuedCert], tok: dict[str, str]) -> str:
    """A few records and a consent with uses to spare; returns the consent token."""
    with channel(port, certs, parties["bench-amr"]) as ch:
        seeded = submission_pb2_grpc.SubmissionServiceStub(ch).SubmitRecords(
            iter(signed_records(parties["bench-amr"], 6, "seed")),
            metadata=(("authorization", f"Bearer {tok['bench-amr']}"),),
            timeout=30,
        )
    all_accepted(seeded, 6)
    now = datetime.now(UTC)
    terms = consent_pb2.ConsentTerms(
        grantee="bench-agency",
        purpose_code="BENCHMARK",
        item_codes=["ADM.PERMIT"],
        data_from=to_timestamp(now - timedelta(days=3650)),
        data_to=to_timestamp(now + timedelta(days=1)),
        valid_from=to_timestamp(now - timedelta(minutes=1)),
        valid_until=to_timestamp(now + timedelta(days=1)),
        max_uses=100_000_000,
    )
    with channel(port, certs, parties["bench-portal"]) as ch:
        granted = consent_pb2_grpc.ConsentServiceStub(ch).GrantConsent(
            consent_pb2.GrantConsentRequest(terms=terms),
            metadata=(("authorization", f"Bearer {tok['subject']}"),),
            timeout=10,
        )
    return str(granted.token.token)


def all_accepted(response: submission_pb2.SubmissionResult, expected: int) -> None:
    """A bench that measured refusals would measure the wrong thing: stop instead."""
    accepted = submission_pb2.RecordResult.OUTCOME_ACCEPTED
    refused = [r for r in response.results if r.outcome != accepted]
    if refused or len(response.results) != expected:
        raise SystemExit(f"bench records were not all accepted: {refused[:1]}")


def releases_records(
    port: int, certs: Path, agency: pki.IssuedCert, token: str, request: Any
) -> None:
    """The measured inquiry must release records, or it measures an empty answer."""
    with channel(port, certs, agency) as ch:
        answer = inquiry_pb2_grpc.InquiryServiceStub(ch).QueryAuthorized(
            request, metadata=(("authorization", f"Bearer {token}"),), timeout=10
        )
    if not answer.records:
        raise SystemExit(f"the consented inquiry released nothing: {answer}")


@contextmanager
def postgres_database() -> Iterator[str | None]:
    name = "cg_bench_" + secrets.token_hex(4)
    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # no PostgreSQL here: measure SQLite only
        print(f"(PostgreSQL not reachable, skipped: {type(exc).__name__})")
        yield None
        return
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per path")
    parser.add_argument(
        "--records", type=int, default=10_000, help="records in the submission stream"
    )
    parser.add_argument(
        "--audit-entries", type=int, default=1_000_000, help="entries in the audit log's run"
    )
    parser.add_argument(
        "--only",
        choices=["exchange"],
        help="exchange: only the bare baselines and the exchange's rows, on SQLite",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="a directory: py-spy records the gateway there during PushRecords and the feed",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cg-bench-"))
    try:
        return run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


ECHO_REQUEST = b"x" * 64
PROFILE_RATE = 1000  # py-spy samples a second
BARE_REPEATS = 5  # the bare server stream lasts milliseconds: the median of this many calls
WATCH_STREAMS = 2000
WATCH_CERTS = 250  # 8 streams a certificate: the per-certificate limit (streams_per_caller)
TOKEN_REQUESTS = 2000
HTTP_IN_FLIGHT = 16  # connections from one address: under the token endpoint's cap of 32
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def bench_pki(work: Path) -> tuple[Path, dict[str, pki.IssuedCert]]:
    """A dev CA in work/certs and the bench's four parties' certificates."""
    certs = work / "certs"
    pki.init_pki(certs)
    kinds = {
        "bench-agency": "credit-agency",
        "bench-amr": "providing-unit",
        "bench-portal": "identity-provider",
        exchange.NATIONAL: "national-platform",
    }
    return certs, {name: pki.issue_participant(certs, name, kind) for name, kind in kinds.items()}


def run(work: Path, args: argparse.Namespace) -> int:
    certs, parties = bench_pki(work)
    load = Load(certs, parties["bench-agency"], args.seconds, work)
    rows: list[tuple[str, dict[str, Any]]] = []
    if args.only == "exchange":
        return run_exchange(work, certs, parties, load, args, rows)
    with server("bare-threaded", certs) as (port, _):
        rows.append(("bare grpcio threaded mTLS echo", load.run("unary", port, ECHO, ECHO_REQUEST)))
    bare = bare_echo(load, certs, rows)
    with server("https-hello", certs) as (port, _):
        hello = load.run(
            "http",
            0,
            "",
            hello_bodies(TOKEN_REQUESTS),
            concurrency=HTTP_IN_FLIGHT,
            target=f"https://localhost:{port}/",
        )
    rows.append(("bare HTTPS hello, the token endpoint's server", hello))
    targets: dict[str, float] = {}
    with postgres_database() as pg_url:
        backends = [("sqlite", sqlite_url(work))]
        if pg_url:
            backends.append(("postgresql", pg_url))
        for backend, url in backends:
            config = prepare_backend(work, certs, url, parties, backend)
            consent = gateway_rows(load, work, certs, parties, config, backend, args, rows, targets)
            exchange_rows(Bench(load, certs, parties, args, rows, targets), config, backend)
        processes_rows(load, work, parties, backends[-1][0], consent, rows, targets)
    log = audit_log.measure(work, args.audit_entries)
    targets.update(
        integrated=log["integrated_per_s"],
        inclusion_ms=log["inclusion_ms"]["mean"],
        consistency_ms=log["consistency_ms"]["mean"],
    )
    rows.append((f"audit log: integrate {log['entries']} entries [sqlite]", log))
    report(rows, bare, targets, hello)
    return 0


def bare_echo(load: Load, certs: Path, rows: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The bare grpc.aio echo, the baseline of every call (and its rate with one in flight)."""
    with server("bare-aio", certs) as (port, _):
        bare = load.run("unary", port, ECHO, ECHO_REQUEST)
        one = load.run("unary", port, ECHO, ECHO_REQUEST, concurrency=1)
    rows += [("bare grpc.aio mTLS echo (the baseline)", bare), ("  ... 1 call in flight", one)]
    return bare


def sqlite_url(work: Path) -> str:
    return f"sqlite:///{work / 'sqlite' / 'gateway.db'}"


def prepare_backend(
    work: Path, certs: Path, url: str, parties: dict[str, pki.IssuedCert], backend: str
) -> Path:
    """work/backend, with a gateway prepared on `url` (see prepare_gateway); its config."""
    (work / backend).mkdir()
    return prepare_gateway(work / backend, certs, url, parties)


def run_exchange(
    work: Path,
    certs: Path,
    parties: dict[str, pki.IssuedCert],
    load: Load,
    args: argparse.Namespace,
    rows: list[tuple[str, dict[str, Any]]],
) -> int:
    """`--only exchange`: the bare echo (the table's "vs bare") and the exchange's rows, SQLite."""
    bare = bare_echo(load, certs, rows)
    targets: dict[str, float] = {}
    config = prepare_backend(work, certs, sqlite_url(work), parties, "sqlite")
    exchange_rows(Bench(load, certs, parties, args, rows, targets), config, "sqlite")
    report(rows, bare, targets, None)
    return 0


@dataclass(frozen=True)
class Bench:
    """What every part of the run measures with, and where it puts its rows and ratios."""

    load: Load
    certs: Path
    parties: dict[str, pki.IssuedCert]
    args: argparse.Namespace
    rows: list[tuple[str, dict[str, Any]]]
    targets: dict[str, float]


def exchange_rows(bench: Bench, config: Path, backend: str) -> None:
    """PushRecords of `--records` signed records in one stream; then SubscribeChanges from a
    cursor taken before a providing unit's submission of as many records, until every one of
    them arrived; then the bare grpc.aio client stream of the same pushed messages and server
    stream of the same bytes as the feed's."""
    load, certs, parties, args = bench.load, bench.certs, bench.parties, bench.args
    national = parties[exchange.NATIONAL]
    token = tokens(config, parties)[exchange.NATIONAL]
    # About the subject nobody queries, as the submission stream's (see gateway_rows).
    pushed = exchange.pushed_records(national, args.records, f"p{backend}", OTHER)
    stream = "\n".join(r.hex() for r in pushed)
    with server("gateway", config) as (port, stats):
        push_cpu: dict[str, Any] = {}
        with (
            profiled(args.profile, stats["pid"], f"push-{backend}"),
            server_cpu(stats["pid"], push_cpu, args.records),
        ):
            push = load.run("stream", port, exchange.PUSH, stream, token, national)
        push.update(push_cpu)
        all_accepted(
            submission_pb2.SubmissionResult.FromString(bytes.fromhex(push.pop("response_hex"))),
            args.records,
        )
        # The feed sends a platform none of its own pushes: what it follows is a providing
        # unit's submission of as many records.
        with channel(port, certs, national) as ch:
            cursor = exchange.first_cursor(ch, token)
        submitted = "\n".join(
            r.SerializeToString().hex()
            for r in signed_records(parties["bench-amr"], args.records, f"f{backend}", (OTHER,))
        )
        unit_token = tokens(config, parties)["bench-amr"]
        stored = load.run("stream", port, SUBMIT, submitted, unit_token, parties["bench-amr"])
        all_accepted(
            submission_pb2.SubmissionResult.FromString(bytes.fromhex(stored.pop("response_hex"))),
            args.records,
        )
        with profiled(args.profile, stats["pid"], f"feed-{backend}"):
            feed = load.run(
                "feed",
                port,
                exchange.SUBSCRIBE,
                exchange.subscribe_request(cursor),
                token,
                national,
                options=("--expect", str(args.records), "--changes"),
            )
    if feed["records"] != args.records:
        raise SystemExit(f"the feed sent {feed['records']} changes, not {args.records}")
    with server("bare-aio", certs) as (port, bare_stats):

        def bare_stream(method: str) -> dict[str, Any]:
            """The pushed messages through a bare client stream, which answers their count."""
            cpu: dict[str, Any] = {}
            with server_cpu(bare_stats["pid"], cpu, args.records):
                result = load.run("stream", port, method, stream, client=national)
            result.update(cpu)
            if bytes.fromhex(result.pop("response_hex")) != str(args.records).encode():
                raise SystemExit(f"{method} did not take every message")
            return result

        counted = bare_stream(exchange.COUNT)
        verified = bare_stream(exchange.VERIFY)
        # The gateway's messages again, bytes for bytes: as many, each of their mean size.
        size = feed["bytes"] // feed["messages"]
        spray = load.run(
            "feed",
            port,
            exchange.SPRAY,
            f"{feed['messages']} {size}",
            client=national,
            options=("--expect", str(feed["messages"]), "--repeat", str(BARE_REPEATS)),
        )
        # For scale (not the target's baseline): the same bytes, a message a change.
        n = args.records
        each = load.run(
            "feed",
            port,
            exchange.SPRAY,
            f"{n} {feed['bytes'] // n}",
            client=national,
            options=("--expect", str(n), "--repeat", str(BARE_REPEATS)),
        )
    spray["records_per_s"] = round(exchange.bare_feed_records_per_s(feed, spray), 1)
    bench.rows.extend(
        [
            (f"gateway PushRecords, {n} pushed records [{backend}]", push),
            (f"  bare grpc.aio client stream, the same {n} messages", counted),
            ("  ... each record's two signatures verified, nothing else", verified),
            (f"gateway SubscribeChanges, {n} changes [{backend}]", feed),
            (
                f"  bare grpc.aio server stream, {feed['messages']} messages of {size} bytes",
                spray,
            ),
            (f"  ... one message a change, {n} messages of {feed['bytes'] // n} bytes", each),
        ]
    )
    bench.targets[f"push_{backend}"] = push["records_per_s"] / counted["records_per_s"]
    bench.targets[f"push_parts_{backend}"] = push["records_per_s"] / verified["records_per_s"]
    bench.targets[f"feed_{backend}"] = feed["records_per_s"] / spray["records_per_s"]
    bench.targets[f"feed_each_{backend}"] = feed["records_per_s"] / each["records_per_s"]


@contextmanager
def profiled(directory: Path | None, pid: int, name: str) -> Iterator[None]:
    """py-spy recording `pid` (raw, every thread) into directory/name.txt while the block runs;
    nothing without a directory."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spy = ROOT / ".venv" / "bin" / "py-spy"
    out = directory / f"{name}.txt"
    args = [str(spy), "record", "-p", str(pid), "-o", str(out), "-f", "raw", "--threads"]
    args += ["--rate", str(PROFILE_RATE), "--nonblocking"]  # the feed's run is short
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)  # attached before the measured call starts
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        process.communicate(timeout=60)


def gateway_rows(
    load: Load,
    work: Path,
    certs: Path,
    parties: dict[str, pki.IssuedCert],
    config: Path,
    backend: str,
    args: argparse.Namespace,
    rows: list[tuple[str, dict[str, Any]]],
    targets: dict[str, float],
) -> str:
    """One backend's figures: the raw release transaction, then the gateway's paths. Returns
    the consent token it seeded."""
    tok = tokens(config, parties)
    with server("gateway", config) as (port, stats):
        consent_token = seed(port, certs, parties, tok)
    authorized_pb = authorized_request(consent_token)
    authorized = authorized_pb.SerializeToString()
    with server("raw-release", config) as (port, _):
        raw = load.run("unary", port, ECHO, ECHO_REQUEST)
    rows.append((f"raw release transaction, driver only [{backend}]", raw))
    with server("gateway", config) as (port, stats):
        agency = tok["bench-agency"]
        releases_records(port, certs, parties["bench-agency"], agency, authorized_pb)
        if backend == "sqlite":
            rows.append(("gateway Health (mTLS, no token)", load.run("unary", port, HEALTH, b"")))
            echo = load.run("unary", port, ECHO, ECHO_REQUEST, agency)
            rows.append(("gateway echo behind auth (token, cnf, revocation, scope)", echo))
            rows.append(
                (
                    "  ... 1 call in flight",
                    load.run("unary", port, ECHO, ECHO_REQUEST, agency, concurrency=1),
                )
            )
            targets["auth"] = echo["calls_per_s"]
            targets["auth_p99"] = echo["p99_ms"]
        query = inquiry_pb2.QueryRequest(
            subject_code=COMPANY, purpose="BENCHMARK", agreement_id="agr-bench"
        ).SerializeToString()
        rows.append(
            (
                f"gateway QueryOpen, open records [{backend}]",
                load.run("unary", port, QUERY_OPEN, query, agency),
            )
        )
        consented = load.run("unary", port, QUERY_AUTHORIZED, authorized, agency)
        rows.append((f"gateway QueryAuthorized, consented [{backend}]", consented))
        targets[f"authorized_{backend}"] = consented["calls_per_s"]
        targets[f"raw_{backend}"] = raw["calls_per_s"]
        if backend == "sqlite":
            rows.append(
                (
                    "  ... 1 call in flight",
                    load.run("unary", port, QUERY_AUTHORIZED, authorized, agency, concurrency=1),
                )
            )
            before = rss_mib(stats["pid"])
            with load.hold(port, WATCH_STREAMS, watcher_certs(work, certs)):
                held = rss_mib(stats["pid"])
                watched = load.run("unary", port, QUERY_AUTHORIZED, authorized, agency)
            rows.append((f"  ... with {WATCH_STREAMS} open Health.Watch streams", watched))
            rows.append(
                (
                    "memory per open stream",
                    {"kib": round((held - before) * 1024 / WATCH_STREAMS, 1)},
                )
            )
            targets["watched"] = watched["calls_per_s"] / consented["calls_per_s"]
            # The assertion's aud is exactly the token endpoint named by the issuer.
            token_url = Settings.load(config, environ={}).effective_issuer + "/token"
            minted = load.run(
                "http",
                0,
                "",
                client_assertions(parties["bench-agency"], token_url, TOKEN_REQUESTS),
                concurrency=HTTP_IN_FLIGHT,
                target=token_url,
            )
            rows.append(("token endpoint, private_key_jwt client credentials", minted))
            targets["tokens"] = minted["calls_per_s"]
        stream = "\n".join(
            r.SerializeToString().hex()
            # About a subject nobody queries: the inquiries measured after it (serve
            # --processes) must release the same three records as before.
            for r in signed_records(parties["bench-amr"], args.records, f"s{backend}", (OTHER,))
        )
        submission = load.run(
            "stream", port, SUBMIT, stream, tok["bench-amr"], parties["bench-amr"]
        )
        all_accepted(
            submission_pb2.SubmissionResult.FromString(
                bytes.fromhex(submission.pop("response_hex"))
            ),
            args.records,
        )
    rows.append((f"gateway peak memory [{backend}]", stats))
    if backend == "sqlite":
        # The same consented query with the audit log's integrator idle (an hour between runs).
        idle = {"CREDIT_GATEWAY_AUDIT_INTEGRATE_MS": str(3_600_000)}
        with server("gateway", config, env=idle) as (port, _):
            alone = load.run("unary", port, QUERY_AUTHORIZED, authorized, tok["bench-agency"])
        rows.append(("  QueryAuthorized with no audit integrator running", alone))
        targets["integrator"] = consented["calls_per_s"] / alone["calls_per_s"]
    rows.append((f"submission stream of {args.records} signed records [{backend}]", submission))
    return consent_token


def processes_rows(
    load: Load,
    work: Path,
    parties: dict[str, pki.IssuedCert],
    backend: str,
    consent_token: str,
    rows: list[tuple[str, dict[str, Any]]],
    targets: dict[str, float],
) -> None:
    """`credit-gateway serve --processes N` for N = 1 and 2, on the last backend measured."""
    config = work / backend / "gateway.toml"
    tok = tokens(config, parties)
    authorized = authorized_request(consent_token).SerializeToString()
    for n in (1, 2):
        with serve_cli(config, n) as port:
            result = load.run("unary", port, QUERY_AUTHORIZED, authorized, tok["bench-agency"])
        rows.append((f"serve --processes {n}, QueryAuthorized [{backend}]", result))
        targets[f"processes_{n}"] = result["calls_per_s"]


@contextmanager
def serve_cli(config: Path, processes: int) -> Iterator[int]:
    """`credit-gateway serve` as an operator runs it, on fixed ports (N processes share them)."""
    port = free_port()
    fixed = config.with_name(f"serve-{processes}.toml")
    text_ = config.read_text().replace(
        'grpc_address = "127.0.0.1:0"', f'grpc_address = "127.0.0.1:{port}"'
    )
    fixed.write_text(text_)
    env = {**os.environ, "CREDIT_GATEWAY_PROCESSES": str(processes), "GRPC_VERBOSITY": "ERROR"}
    cli = [sys.executable, "-m", "credit_gateway.cli", "--config", str(fixed), "serve"]
    log = fixed.with_suffix(".log")
    with log.open("w") as stderr:
        process = subprocess.Popen(cli, env=env, stderr=stderr)
    try:
        if not wait_serving(port, config.parent.parent / "certs"):
            raise SystemExit(f"credit-gateway serve did not come up:\n{log.read_text()[-2000:]}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)


def wait_serving(port: int, certs: Path) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    party = pki.issue_participant(certs, "bench-agency", "credit-agency")
    for _ in range(100):
        try:
            with channel(port, certs, party) as ch:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return True
        except grpc.RpcError:
            time.sleep(0.2)
    return False


def watcher_certs(work: Path, certs: Path) -> Path:
    """Certificates of our CA, registered or not, for the open streams."""
    directory = work / "watchers"
    if not directory.exists():
        directory.mkdir()
        for i in range(WATCH_CERTS):
            issued = pki.issue_participant(certs, f"watcher-{i}", "credit-agency")
            shutil.copy(issued.cert_path, directory / f"w{i}.pem")
            shutil.copy(issued.key_path, directory / f"w{i}.key")
    return directory


def client_assertions(party: pki.IssuedCert, token_url: str, count: int) -> str:
    """Form bodies of `count` client-credentials requests, each with its own RFC 7523 client
    assertion (a jti is accepted once), signed before the clock starts."""
    from urllib.parse import urlencode

    from joserfc import jwt
    from joserfc.jwk import ECKey

    key = ECKey.import_key(party.key_path.read_bytes())
    now = int(time.time())
    bodies = []
    for _ in range(count):
        claims = {
            "iss": "bench-agency",
            "sub": "bench-agency",
            "aud": token_url,
            "jti": secrets.token_hex(16),
            "iat": now,
            "exp": now + 600,
        }
        assertion = jwt.encode({"alg": "ES256", "kid": party.x5t_s256}, claims, key)
        bodies.append(
            urlencode(
                {
                    "grant_type": "client_credentials",
                    "client_id": "bench-agency",
                    "scope": "inquiry.open",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": assertion,
                }
            )
        )
    return "\n".join(bodies)


def hello_bodies(count: int) -> str:
    return "\n".join(["hello"] * count)


def authorized_request(consent_token: str) -> inquiry_pb2.AuthorizedQueryRequest:
    return inquiry_pb2.AuthorizedQueryRequest(
        query=inquiry_pb2.QueryRequest(
            subject_code=PERSON,
            purpose="BENCHMARK",
            agreement_id="agr-bench",
            item_codes=["ADM.PERMIT"],
        ),
        consent_token=consent_token,
    )


ECHO = "/bench.Echo/Echo"
HEALTH = "/grpc.health.v1.Health/Check"
QUERY_OPEN = "/credit_gateway.v1.InquiryService/QueryOpen"
QUERY_AUTHORIZED = "/credit_gateway.v1.InquiryService/QueryAuthorized"
SUBMIT = "/credit_gateway.v1.SubmissionService/SubmitRecords"


def report(
    rows: list[tuple[str, dict[str, Any]]],
    bare: dict[str, Any],
    targets: dict[str, float],
    hello: dict[str, Any] | None,
) -> None:
    """The table and the ratios; with no `hello` (`--only exchange`), the exchange's alone."""
    print(
        f"\ncredit_gateway benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        "64 calls in flight unless said\n"
    )
    print(f"{'path':<62} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8}")
    for name, r in rows:
        if "calls_per_s" in r:
            ratio = r["calls_per_s"] / bare["calls_per_s"]
            errors = f"  ({r['errors']} errors)" if r.get("errors") else ""
            latency = f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
            figures = f"{r['calls_per_s']:>9.0f} {latency} {ratio:>8.2f}"
            print(f"{name:<62} {figures}{errors}")
        elif "records_per_s" in r:
            cpu = f", server CPU {r['cpu_us']} µs a record" if "cpu_us" in r else ""
            print(f"{name:<62} {r['records_per_s']:>9.0f} records/s ({r['seconds']} s{cpu})")
        elif "peak_rss_mib" in r:
            print(f"{name:<62} {r['peak_rss_mib']:>9.1f} MiB peak RSS")
        elif "kib" in r:
            print(f"{name:<62} {r['kib']:>9.1f} KiB")
        elif "integrated_per_s" in r:
            print(f"{name:<62} {r['integrated_per_s']:>9.0f} entries/s integrated")
            for proof in ("inclusion", "consistency"):
                t = r[f"{proof}_ms"]
                print(f"  ... {proof} proof at that size, one transaction  "
                      f"mean {t['mean']:.3f} ms, p99 {t['p99']:.3f} ms")  # fmt: skip
    print("\nratios against the targets of the issues (same run):")
    exchange_checks: list[tuple[str, float, str]] = []
    for db in ("sqlite", "postgresql"):
        if f"push_{db}" in targets:
            exchange_checks += [
                (f"PushRecords [{db}] / bare client stream", targets[f"push_{db}"], ">= 0.5"),
                (
                    "  ... / the bare stream verifying its signatures",
                    targets[f"push_parts_{db}"],
                    "",
                ),
                (f"SubscribeChanges [{db}] / bare server stream", targets[f"feed_{db}"], ">= 0.5"),
                ("  ... / the bare stream of a message a change", targets[f"feed_each_{db}"], ""),
            ]
    if hello is None:
        _print_checks(exchange_checks)
        return
    b = bare["calls_per_s"]
    checks = [
        (
            "QueryAuthorized [sqlite] / bare echo",
            targets.get("authorized_sqlite", 0) / b,
            ">= 0.25",
        ),
        (
            "QueryAuthorized [sqlite] / raw release transaction [sqlite]",
            _ratio(targets, "authorized_sqlite", "raw_sqlite"),
            ">= 0.4",
        ),
        (
            "QueryAuthorized [postgresql] / raw release transaction [postgresql]",
            _ratio(targets, "authorized_postgresql", "raw_postgresql"),
            ">= 0.5",
        ),
        ("auth-layer echo / bare echo", targets.get("auth", 0) / b, ">= 0.6"),
        ("auth-layer echo p99 ms at 64 in flight", targets.get("auth_p99", 0), "<= 60"),
        (
            f"QueryAuthorized with {WATCH_STREAMS} open streams / without",
            targets.get("watched", 0),
            ">= 0.8",
        ),
        ("tokens / bare HTTPS hello", targets.get("tokens", 0) / hello["calls_per_s"], ""),
        ("serve --processes 2 / 1", _ratio(targets, "processes_2", "processes_1"), ""),
        (
            "audit log entries integrated per second [sqlite]",
            targets.get("integrated", 0),
            ">= 10000",
        ),
        ("audit log inclusion proof ms at that size", targets.get("inclusion_ms", 0), "< 1"),
        (
            "QueryAuthorized with the integrator running / without",
            targets.get("integrator", 0),
            ">= 0.9",
        ),
    ]
    _print_checks(checks + exchange_checks)


def _print_checks(checks: list[tuple[str, float, str]]) -> None:
    for name, value, target in checks:
        print(f"  {name:<66} {value:>7.2f}  {target}")


def _ratio(targets: dict[str, float], a: str, b: str) -> float:
    return targets[a] / targets[b] if targets.get(a) and targets.get(b) else 0.0


if __name__ == "__main__":
    sys.exit(main())
