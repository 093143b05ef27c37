"""Two gateways on loopback, as two platforms run them: the provincial center and the national
platform, each with its own CA, keys, agreements and database. Each registers the other as a
participant (provincial-platform / national-platform) with a certificate its own CA issued,
under an agreement naming push; each has the other as a peer (`credit-gateway peers add`, with
the certificate and key the other issued it), so records flow both ways.

The gateways run on one clock that follows the real time (`WallClock`): the national platform
may be a `credit-gateway serve` subprocess (support/serving.py) on the real clock, and the
delivery's backoff must pass without a test moving a clock.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.databases import empty, fresh_database
from support.harness import Clock, Harness, Participant, _org_code, make_agreement, signed_record
from support.scenario import submit
from support.serving import ServeProcess, serve

from credit_gateway.adapters.storage import outbox
from credit_gateway.adapters.storage.db import make_engine
from credit_gateway.adapters.storage.tables import AuditEntryRow, OutboxRow, RecordRow
from credit_gateway.cli.main import main
from credit_gateway.devpki import pki

ITEM = "ADM.PUNISHMENT"  # public, open for organisations: what the platforms exchange
PURPOSE = "LOAN_APPROVAL"
PROVINCIAL, NATIONAL = "hubei-platform", "cn-platform"  # each as the other registers it
# Fast delivery for tests: polled every 50 ms, retried after a few ms, leases of 2 s.
DELIVERY = {
    "outbox_poll_ms": 50,
    "outbox_backoff_ms": 20,
    "outbox_backoff_max_ms": 100,
    "outbox_max_attempts": 50,
    "outbox_lease_seconds": 2,
    "peer_timeout_seconds": 5,
}


@pytest.fixture(scope="session", name="national_url")
def national_database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The national platform's own database, on the same backend as the provincial one's (a
    test module that uses two_gateways imports this fixture)."""
    with fresh_database(backend, tmp_path_factory.mktemp(f"national-{backend}")) as url:
        yield url


class WallClock(Clock):
    """The real time, moved forward by `advance` for every gateway that shares it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    @property  # type: ignore[override]
    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @now.setter
    def now(self, value: datetime) -> None:
        self.offset = value - datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Platform:
    """A gateway and what the other knows of it."""

    harness: Harness
    name: str  # its participant id at the other
    certs: Path
    config: Path  # its settings file, for the CLI
    provider: Participant  # a providing unit of its own
    peer_name: str  # its name for the other, as a peer
    _subjects: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    @property
    def db(self) -> Any:
        return self.harness.db

    def peers(self, *args: str) -> int:
        return main(["--config", str(self.config), "peers", *args])

    def outbox(self, *args: str) -> int:
        return main(["--config", str(self.config), "outbox", *args])

    def records(
        self, n: int, *, subjects: int = 4, prefix: str = "r", days_ago: int = 5
    ) -> list[Any]:
        """`n` signed records of ITEM, about `subjects` organisations (so over partitions)."""
        codes = [_org_code(next(self._subjects)) for _ in range(subjects)]
        occurred = self.harness.clock.now - timedelta(days=days_ago)
        return [
            signed_record(
                self.provider,
                record_id=f"{prefix}-{i}",
                item=ITEM,
                subject=codes[i % subjects],
                payload={
                    "decision_no": f"D-{prefix}-{i}",
                    "violation": "unlicensed trading",
                    "penalty": "fine",
                    "decided_on": "2026-01-02",
                    "authority": "Wuhan AMR",
                },
                occurred_at=occurred,
                notice="N-1",
            )
            for i in range(n)
        ]

    def registration(self, record_id: str) -> Any:
        """A REG.ENTERPRISE record: an item no push agreement here shares."""
        return signed_record(
            self.provider,
            record_id=record_id,
            item="REG.ENTERPRISE",
            subject=_org_code(next(self._subjects)),
            payload={"name": "Wuhan Example Co", "established_on": "2020-01-01"},
            occurred_at=self.harness.clock.now - timedelta(days=5),
        )

    def submit(self, records: list[Any]) -> Any:
        result = submit(self.harness, self.provider, records)
        assert result.accepted == len(records), result
        return result


def start_platform(
    tmp: Path, name: str, database_url: str, clock: Clock, provider: str, **overrides: Any
) -> Platform:
    """A gateway with a CA of its own, on an emptied database; `provider` a providing unit."""
    from support.harness import start_harness

    engine = make_engine(database_url)
    empty(engine)
    engine.dispose()
    certs = tmp / f"{name}-certs"
    pki.init_pki(certs)
    h = start_harness(tmp / name, certs, database_url, clock, **{**DELIVERY, **overrides})
    unit = h.add_participant(provider, "providing-unit")
    config = h.write_config(tmp / f"{name}.toml")
    return Platform(h, name, certs, config, unit, peer_name="")


def register_platform(at: Platform, other: Platform, kind: str) -> Participant:
    """`other` registered at `at` with a certificate `at`'s CA issues, under an agreement naming
    push of ITEM: what `at` accepts from it and delivers to it."""
    participant = at.harness.add_participant(other.name, kind)
    make_agreement(
        at.harness,
        participant,
        agreement_id=f"agr-{other.name}",
        operations=("push",),
        items=(ITEM,),
        purposes=(PURPOSE,),
        levels=("open", "authorized"),
    )
    return participant


def add_peer(
    at: Platform,
    other: Platform,
    credential: Participant,
    *,
    grpc_target: str | None = None,
    oauth_port: int | None = None,
    name: str | None = None,
) -> int:
    """`other` as `at`'s peer: its address and CA, and the certificate and key its CA issued
    for `at` (`credential`, registered there). A serve subprocess may stand in for its ports."""
    peer = name or other.peer_name
    port = oauth_port if oauth_port is not None else other.harness.running.oauth_port
    return at.peers(
        "add", peer,
        "--participant", other.name,
        "--grpc", grpc_target or other.harness.target,
        "--token-url", f"https://127.0.0.1:{port}/token",
        "--client-id", at.name,
        "--ca", str(other.certs / "ca.pem"),
        "--cert", str(credential.cert.cert_path),
        "--key", str(credential.cert.key_path),
    )  # fmt: skip


def serve_platform(platform: Platform, tmp: Path, grpc_port: int, oauth_port: int) -> ServeProcess:
    """The platform's gateway as a `credit-gateway serve` subprocess (its home, certificates
    and database) on the given ports, its issuer its own token endpoint's; serving on return."""
    process = serve(
        platform.harness, tmp,
        grpc_address=f"127.0.0.1:{grpc_port}", oauth_address=f"127.0.0.1:{oauth_port}",
        issuer=f"https://127.0.0.1:{oauth_port}",
    )  # fmt: skip
    try:
        process.wait_serving(platform.provider)
    except BaseException:
        process.close()
        raise
    return process


@dataclass
class Pair:
    provincial: Platform
    national: Platform
    clock: WallClock
    # Each platform as the other registered it (its certificate from the other's CA).
    provincial_at_national: Participant
    national_at_provincial: Participant


@contextmanager
def two_gateways(
    tmp: Path,
    provincial_url: str,
    national_url: str,
    *,
    peers: bool = True,
    provincial: dict[str, Any] | None = None,
    national: dict[str, Any] | None = None,
) -> Iterator[Pair]:
    clock = WallClock()
    prov = start_platform(tmp, PROVINCIAL, provincial_url, clock, "hubei-amr", **(provincial or {}))
    try:
        nat = start_platform(tmp, NATIONAL, national_url, clock, "hubei-tax", **(national or {}))
        try:
            prov.peer_name, nat.peer_name = "hubei", "national"
            at_national = register_platform(nat, prov, "provincial-platform")
            at_provincial = register_platform(prov, nat, "national-platform")
            pair = Pair(prov, nat, clock, at_national, at_provincial)
            if peers:
                assert add_peer(prov, nat, at_national) == 0
                assert add_peer(nat, prov, at_provincial) == 0
            yield pair
        finally:
            nat.harness.close()
    finally:
        prov.harness.close()


# --- what the databases hold ------------------------------------------------------------------


def pushed_from(db: Any, origin: str) -> list[tuple[str, str, str | None]]:
    """(origin record id, origin kid, providing unit) of each record `origin` pushed here."""
    with db.transaction(write=False) as session:
        rows = session.execute(
            select(
                RecordRow.provider_record_id, RecordRow.origin_kid, RecordRow.origin_provider_code
            )
            .where(RecordRow.provider_id == origin)
            .order_by(RecordRow.provider_record_id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def count_pushed(db: Any, origin: str) -> int:
    with db.transaction(write=False) as session:
        query = select(func.count()).select_from(RecordRow).where(RecordRow.provider_id == origin)
        return int(session.scalar(query) or 0)


def outbox_states(db: Any) -> dict[str, int]:
    with db.transaction(write=False) as session:
        return outbox.counts(session)


def outbox_rows(db: Any, state: str | None = None) -> list[Any]:
    with db.transaction(write=False) as session:
        query = select(OutboxRow).order_by(OutboxRow.created_at, OutboxRow.id)
        if state is not None:
            query = query.where(OutboxRow.state == state)
        return list(session.scalars(query))


def sent_once_per_attempt(db: Any, peer: str) -> None:
    """Each delivered entry was released once per attempt, on record: its failed attempts
    (each a release, its send then failing) and the one that was acknowledged. A record sent
    by two replicas at once would be released once more than its attempts say."""
    released = Counter(released_by_delivery(db, peer))
    delivered = outbox_rows(db, outbox.DELIVERED)
    assert {r.record_id: r.attempts + 1 for r in delivered} == dict(released)


def released_by_delivery(db: Any, peer: str) -> list[str]:
    """Every record id the delivery audit entries to `peer` name as released, repeats kept."""
    import json

    with db.transaction(write=False) as session:
        bodies = session.scalars(
            select(AuditEntryRow.body).where(AuditEntryRow.method == f"Deliver:{peer}")
        )
        return [rid for body in bodies for rid in json.loads(body)["released"]]
