"""`make bench`: the gateway's hot paths against a bare grpcio mTLS echo, in one run.

Every figure comes from the same load generator (bench/load.py, its own process, 64 calls in
flight) against servers in their own processes (bench/server.py), and is reported as a ratio to
the bare echo measured in the same run. Not a test: nothing here asserts; it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import create_engine, text

from credit_gateway import pki, registry, tls
from credit_gateway.api import client
from credit_gateway.api.convert import to_timestamp
from credit_gateway.api.v1 import (
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2,
    submission_pb2_grpc,
)
from credit_gateway.auth.scopes import PrincipalKind
from credit_gateway.bootstrap import initialise
from credit_gateway.config import Settings
from credit_gateway.domain.records import Submission
from credit_gateway.exchange import agreements as signing
from credit_gateway.gateway import Gateway
from credit_gateway.storage import agreements as agreement_store
from credit_gateway.storage import catalog as catalog_store
from credit_gateway.storage import trust

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COMPANY, PERSON = "91350100M000100Y43", "11010519491231002X"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(mode: str, arg: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), mode, str(arg)],
        stdout=subprocess.PIPE,
        text=True,
        # The gateway's own settings may be tried from the environment (e.g. the worker count).
        env={
            "GRPC_VERBOSITY": "ERROR",
            "PATH": "/usr/bin:/bin",
            **{k: v for k, v in os.environ.items() if k.startswith("CREDIT_GATEWAY_")},
        },
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if not line or line[0] != "READY":
        process.kill()
        raise SystemExit(f"{mode} server did not start")
    stats: dict[str, Any] = {}
    try:
        yield int(line[1]), stats
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
        stats.update(json.loads(out.strip().splitlines()[-1]) if out.strip() else {})


class Load:
    def __init__(self, certs: Path, client: pki.IssuedCert, seconds: float, workdir: Path) -> None:
        self.certs, self.client, self.seconds, self.workdir = certs, client, seconds, workdir

    def run(
        self,
        mode: str,
        port: int,
        method: str,
        request: bytes | str,
        token: str = "",
        client: pki.IssuedCert | None = None,
    ) -> dict[str, Any]:
        client = client or self.client
        path = self.workdir / f"request-{secrets.token_hex(4)}"
        path.write_bytes(request) if isinstance(request, bytes) else path.write_text(request)
        args = [
            sys.executable,
            str(HERE / "load.py"),
            mode,
            "--target",
            f"localhost:{port}",
            "--method",
            method,
            "--request",
            str(path),
            "--ca",
            str(self.certs / "ca.pem"),
            "--cert",
            str(client.cert_path),
            "--key",
            str(client.key_path),
            "--seconds",
            str(self.seconds),
        ]
        if token:
            args += ["--token", token]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"load generator failed on {method}:\n{result.stderr[-2000:]}")
        return dict(json.loads(result.stdout))


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
    document = signing.sign(
        signing.draft(agreement), "center", signing.load_private_key(settings.operator_key_file)
    )
    document = signing.sign(
        document, "bench-agency", signing.load_private_key(parties["bench-agency"].key_path)
    )
    with gateway.db.transaction() as session:
        verified = signing.verify(
            document,
            signing.load_private_key(settings.operator_key_file).public_key(),
            trust.participant_jwks(session, "bench-agency"),
            now,
        )
        agreement_store.register_agreement(session, verified, json.dumps(document).encode(), now)
    gateway.close()
    return config


def tokens(config: Path, parties: dict[str, pki.IssuedCert]) -> dict[str, str]:
    gateway = Gateway(Settings.load(config, environ={}))
    now = datetime.now(UTC)
    out = {}
    for name, scopes in {
        "bench-agency": ["inquiry.open", "inquiry.authorized"],
        "bench-amr": ["submission.write"],
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
    unit: pki.IssuedCert, count: int, prefix: str
) -> list[submission_pb2.SubmittedRecord]:
    key = signing.load_private_key(unit.key_path)
    occurred = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    records = []
    for i in range(count):
        subject = COMPANY if i % 2 else PERSON
        payload = {
            "permit_no": f"{prefix}-{i}",
            "permit_type": "food trading",
            "authority": "Wuhan AMR",
        }
        s = Submission("bench-amr", f"{prefix}-{i}", "ADM.PERMIT", subject, payload, occurred, "")
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
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cg-bench-"))
    try:
        return run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> int:
    certs = work / "certs"
    pki.init_pki(certs)
    parties = {
        name: pki.issue_participant(certs, name, kind)
        for name, kind in {
            "bench-agency": "credit-agency",
            "bench-amr": "providing-unit",
            "bench-portal": "identity-provider",
        }.items()
    }
    load = Load(certs, parties["bench-agency"], args.seconds, work)
    rows: list[tuple[str, dict[str, Any]]] = []
    echo_request = b"x" * 64
    with server("bare", certs) as (port, _):
        bare = load.run("unary", port, "/bench.Echo/Echo", echo_request)
    rows.append(("bare grpcio mTLS echo", bare))

    with postgres_database() as pg_url:
        backends = [("sqlite", f"sqlite:///{work / 'sqlite' / 'gateway.db'}")]
        if pg_url:
            backends.append(("postgresql", pg_url))
        for backend, url in backends:
            (work / backend).mkdir()
            config = prepare_gateway(work / backend, certs, url, parties)
            tok = tokens(config, parties)
            with server("gateway", config) as (port, stats):
                consent_token = seed(port, certs, parties, tok)
                query = inquiry_pb2.QueryRequest(
                    subject_code=COMPANY, purpose="BENCHMARK", agreement_id="agr-bench"
                )
                authorized = inquiry_pb2.AuthorizedQueryRequest(
                    query=inquiry_pb2.QueryRequest(
                        subject_code=PERSON,
                        purpose="BENCHMARK",
                        agreement_id="agr-bench",
                        item_codes=["ADM.PERMIT"],
                    ),
                    consent_token=consent_token,
                )
                releases_records(
                    port, certs, parties["bench-agency"], tok["bench-agency"], authorized
                )
                if backend == "sqlite":
                    rows.append(
                        (
                            "gateway Health (mTLS, no token)",
                            load.run("unary", port, "/grpc.health.v1.Health/Check", b""),
                        )
                    )
                    rows.append(
                        (
                            "gateway echo behind auth (token, cnf, revocation, scope)",
                            load.run(
                                "unary", port, "/bench.Echo/Echo", echo_request, tok["bench-agency"]
                            ),
                        )
                    )
                rows.append(
                    (
                        f"gateway QueryOpen, open records [{backend}]",
                        load.run(
                            "unary",
                            port,
                            "/credit_gateway.v1.InquiryService/QueryOpen",
                            query.SerializeToString(),
                            tok["bench-agency"],
                        ),
                    )
                )
                rows.append(
                    (
                        f"gateway QueryAuthorized, consented [{backend}]",
                        load.run(
                            "unary",
                            port,
                            "/credit_gateway.v1.InquiryService/QueryAuthorized",
                            authorized.SerializeToString(),
                            tok["bench-agency"],
                        ),
                    )
                )
                stream = "\n".join(
                    r.SerializeToString().hex()
                    for r in signed_records(parties["bench-amr"], args.records, f"s{backend}")
                )
                submission = load.run(
                    "stream",
                    port,
                    "/credit_gateway.v1.SubmissionService/SubmitRecords",
                    stream,
                    tok["bench-amr"],
                    parties["bench-amr"],
                )
                all_accepted(
                    submission_pb2.SubmissionResult.FromString(
                        bytes.fromhex(submission.pop("response_hex"))
                    ),
                    args.records,
                )
            rows.append((f"gateway peak memory [{backend}]", stats))
            rows.append(
                (f"submission stream of {args.records} signed records [{backend}]", submission)
            )
    report(rows, bare)
    return 0


def report(rows: list[tuple[str, dict[str, Any]]], bare: dict[str, Any]) -> None:
    print(
        f"\ncredit_gateway benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, 64 calls in flight\n"
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
            print(f"{name:<62} {r['records_per_s']:>9.0f} records/s ({r['seconds']} s)")
        elif "peak_rss_mib" in r:
            print(f"{name:<62} {r['peak_rss_mib']:>9.1f} MiB peak RSS")


if __name__ == "__main__":
    sys.exit(main())
