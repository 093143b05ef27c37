"""Two real `credit-gateway serve` processes on one PostgreSQL database (DESIGN "Storage and
scale": stateless replicas). A consent granted and revoked through one replica takes effect for
the very next inquiry through the other: status is read in the release transaction, not cached.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select
from support.audit_entries import INQUIRIES
from support.databases import backends
from support.harness import (
    PERSON,
    Harness,
    Participant,
    free_port,
    make_agreement,
    metadata,
    signed_record,
)
from support.rpc import status_of

from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import (
    consent_pb2,
    consent_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2_grpc,
)
from credit_gateway.adapters.storage.tables import AuditEntryRow
from credit_gateway.auth.scopes import PrincipalKind
from credit_gateway.runtime import tls
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import Gateway, utcnow

pytestmark = pytest.mark.skipif(
    "postgresql" not in backends(), reason="replicas share a PostgreSQL database"
)

# Behind a load balancer every replica names the same issuer; by default each would name its own
# token endpoint and refuse the other's tokens.
ISSUER = "https://credit-gateway.test"
AGREEMENT = "agr-zx-credit"


@dataclass
class Replica:
    name: str
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def target(self) -> str:
        return f"localhost:{self.settings.grpc_address.rsplit(':', 1)[1]}"

    def channel(self, participant: Participant) -> grpc.Channel:
        cert = participant.cert
        credentials = tls.grpc_channel_credentials(
            self.settings.ca_cert, cert.cert_path, cert.key_path
        )
        return grpc.secure_channel(self.target, credentials)


@pytest.fixture
def prepared(backend: str, request: pytest.FixtureRequest) -> Harness:
    """The database, keys, catalog, participants, agreement and a record, made through the
    in-process harness (only on PostgreSQL: the harness is not even started elsewhere)."""
    if backend != "postgresql":
        pytest.skip("replicas share a PostgreSQL database")
    h = cast(Harness, request.getfixturevalue("harness"))
    amr = h.add_participant("hubei-amr", "providing-unit")
    agency = h.add_participant("zx-credit", "credit-agency")
    h.add_participant("realname-portal", "identity-provider")
    make_agreement(h, agency, agreement_id=AGREEMENT, categories=("administrative_punishment",))
    record = signed_record(
        amr,
        record_id="amr-1",
        item="ADM.PUNISHMENT",
        subject=PERSON,
        payload={
            "decision_no": "E-1",
            "violation": "v",
            "penalty": "fine",
            "decided_on": "2026-01-02",
            "authority": "AMR",
        },
        occurred_at=h.clock.now - timedelta(days=5),
        notice="N-1",
    )
    result = submission_pb2_grpc.SubmissionServiceStub(amr.channel).SubmitRecords(
        iter([record]), metadata=metadata(h.token(amr)), timeout=10
    )
    assert result.accepted == 1, result
    return h


def _start(name: str, h: Harness, tmp_path: Path) -> Replica:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'home = "{h.settings.home}"\n'  # the same master key
        f'certs_dir = "{h.settings.certs_dir}"\n'
        f'database_url = "{h.settings.database_url}"\n'
        f'grpc_address = "127.0.0.1:{free_port()}"\n'
        f'oauth_address = "127.0.0.1:{free_port()}"\n'
        f'issuer = "{ISSUER}"\n'
    )
    settings = Settings.load(config, environ={})
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "credit_gateway.cli", "--config", str(config), "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Replica(name, settings, process, log)


def _wait_serving(replica: Replica, probe: Participant, deadline: float) -> None:
    with replica.channel(probe) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            assert replica.process.poll() is None, replica.log.read_text()
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass  # not listening yet
            assert time.monotonic() < deadline, f"{replica.name} never served"
            time.sleep(0.1)


@pytest.fixture
def replicas(prepared: Harness, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    started = [_start(name, prepared, tmp_path) for name in ("a", "b")]
    try:
        deadline = time.monotonic() + 30
        for replica in started:
            _wait_serving(replica, prepared.participants["zx-credit"], deadline)
        yield started[0], started[1]
    finally:
        for replica in started:  # only if the test did not stop them itself
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait(timeout=10)


def test_revocation_through_one_replica_refuses_the_next_inquiry_through_the_other(
    prepared: Harness, replicas: tuple[Replica, Replica]
) -> None:
    h = prepared
    a, b = replicas
    agency, portal = h.participants["zx-credit"], h.participants["realname-portal"]
    # The processes run on the real clock: tokens come from an issuer over the database's keys.
    minter = Gateway(a.settings)
    try:

        def token(participant: Participant, subject: str | None = None) -> tuple[tuple[str, str]]:
            kind = PrincipalKind.SUBJECT if subject else PrincipalKind.PARTICIPANT
            scopes = ["subject.consent"] if subject else ["inquiry.authorized"]
            issued, _ = minter.token_issuer.issue(
                client_id=participant.id,
                subject=subject or participant.id,
                kind=kind,
                scopes=scopes,
                cnf_x5t=participant.cert.x5t_s256,
                now=utcnow(),
            )
            return (("authorization", f"Bearer {issued}"),)

        now = utcnow().replace(microsecond=0)
        terms = consent_pb2.ConsentTerms(
            grantee=agency.id,
            purpose_code="LOAN_APPROVAL",
            purpose_text="mortgage application",
            item_codes=["ADM.PUNISHMENT"],
            data_from=to_timestamp(now - timedelta(days=365)),
            data_to=to_timestamp(now + timedelta(days=1)),
            valid_from=to_timestamp(now - timedelta(minutes=1)),
            valid_until=to_timestamp(now + timedelta(days=30)),
            max_uses=5,
        )
        with a.channel(portal) as portal_a, b.channel(agency) as agency_b:
            consents_a = consent_pb2_grpc.ConsentServiceStub(portal_a)
            inquiry_b = inquiry_pb2_grpc.InquiryServiceStub(agency_b)
            granted = consents_a.GrantConsent(
                consent_pb2.GrantConsentRequest(terms=terms),
                metadata=token(portal, PERSON),
                timeout=10,
            )
            consent_id = granted.consent.consent_id
            query = inquiry_pb2.AuthorizedQueryRequest(
                query=inquiry_pb2.QueryRequest(
                    subject_code=PERSON,
                    purpose="LOAN_APPROVAL",
                    agreement_id=AGREEMENT,
                    item_codes=["ADM.PUNISHMENT"],
                ),
                consent_token=granted.token.token,
            )

            answer = inquiry_b.QueryAuthorized(query, metadata=token(agency), timeout=10)
            assert [r.item_code for r in answer.records] == ["ADM.PUNISHMENT"]
            assert answer.consent_id == consent_id

            revoked = consents_a.RevokeConsent(
                consent_pb2.ConsentRef(consent_id=consent_id),
                metadata=token(portal, PERSON),
                timeout=10,
            )
            assert revoked.status == consent_pb2.CONSENT_STATUS_REVOKED
            with pytest.raises(grpc.RpcError) as refused:
                inquiry_b.QueryAuthorized(query, metadata=token(agency), timeout=10)
            assert status_of(refused.value) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "CONSENT_REVOKED",
            )

        with h.db.transaction(write=False) as session:
            outcomes = session.scalars(
                select(AuditEntryRow.outcome)
                .where(AuditEntryRow.consent_id == consent_id, INQUIRIES)
                .order_by(AuditEntryRow.seq)
            )
            assert list(outcomes) == ["RELEASED", "REFUSED"]  # the inquiries under it
    finally:
        minter.close()

    # Both replicas drain and exit cleanly on SIGTERM.
    for replica in (a, b):
        replica.process.send_signal(signal.SIGTERM)
    for replica in (a, b):
        assert replica.process.wait(timeout=30) == 0, replica.log.read_text()
