"""A real gateway for integration tests: dev PKI, migrated database, keys, catalog, and the gRPC
server on a loopback port with mutual TLS. Participants get real certificates and real tokens."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from credit_gateway.adapters.storage import catalog as catalog_store
from credit_gateway.adapters.storage.db import Database
from credit_gateway.auth.scopes import SCOPES_BY_KIND, PrincipalKind
from credit_gateway.cli.bootstrap import initialise
from credit_gateway.devpki import pki
from credit_gateway.runtime import tls
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.runtime.server import RunningGateway, start
from credit_gateway.services import operator as registry

CATALOG_FILE = (
    Path(__file__).resolve().parents[2] / "src" / "credit_gateway" / "data" / "catalog.json"
)

# Valid codes (GB 32100 / GB 11643) used across the tests.
ORG_CODES = ["91350100M000100Y43", "91110000600037341L"]
COMPANY = "91350100M000100Y43"
PERSON = "11010519491231002X"


class Clock:
    """An adjustable clock shared by the gateway and the test."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Participant:
    id: str
    kind: str
    cert: pki.IssuedCert
    channel: grpc.Channel


@dataclass
class Harness:
    settings: Settings
    running: RunningGateway
    clock: Clock
    participants: dict[str, Participant] = field(default_factory=dict)
    _org: int = 0

    @property
    def gateway(self) -> Gateway:
        return self.running.gateway

    @property
    def db(self) -> Database:
        return self.gateway.db

    @property
    def target(self) -> str:
        return f"localhost:{self.running.port}"

    def channel(self, cert: pki.IssuedCert | None) -> grpc.Channel:
        credentials = tls.grpc_channel_credentials(
            self.settings.ca_cert, cert.cert_path if cert else None, cert.key_path if cert else None
        )
        return grpc.secure_channel(self.target, credentials)

    def add_participant(
        self,
        participant_id: str,
        kind: str,
        *,
        scopes: list[str] | None = None,
        licence_days: int = 365,
        org_code: str | None = None,
    ) -> Participant:
        cert = pki.issue_participant(self.settings.certs_dir, participant_id, kind)
        code = org_code or _org_code(self._org)
        self._org += 1
        registry.add_participant(
            self.settings,
            participant_id=participant_id,
            kind=kind,
            org_code=code,
            name=participant_id,
            certificates=[cert.cert_path],
            scopes=scopes,
            licence=("LIC-" + participant_id, self.clock.now + timedelta(days=licence_days))
            if kind == "credit-agency"
            else None,
        )
        p = Participant(participant_id, kind, cert, self.channel(cert))
        self.participants[participant_id] = p
        return p

    def token(self, participant: Participant, scopes: list[str] | None = None) -> str:
        """A token minted by the gateway's own issuer (the token endpoint uses the same one)."""
        from credit_gateway.devpki.pki import ParticipantKind

        granted = (
            scopes
            if scopes is not None
            else sorted(SCOPES_BY_KIND[ParticipantKind(participant.kind)])
        )
        token, _ = self.gateway.token_issuer.issue(
            client_id=participant.id,
            subject=participant.id,
            kind=PrincipalKind.PARTICIPANT,
            scopes=granted,
            cnf_x5t=participant.cert.x5t_s256,
            now=self.clock.now,
        )
        return token

    def subject_token(
        self, portal: Participant, subject_code: str, scopes: list[str] | None = None
    ) -> str:
        token, _ = self.gateway.token_issuer.issue(
            client_id=portal.id,
            subject=subject_code,
            kind=PrincipalKind.SUBJECT,
            scopes=scopes or ["subject.consent", "subject.self"],
            cnf_x5t=portal.cert.x5t_s256,
            now=self.clock.now,
        )
        return token

    def write_config(self, path: Path) -> Path:
        """A TOML settings file naming this gateway, for the CLI the operator runs beside it."""
        s = self.settings
        values = {
            "home": str(s.home),
            "certs_dir": str(s.certs_dir),
            "database_url": s.database_url,
            "grpc_address": s.grpc_address,
            "oauth_address": s.oauth_address,
        }
        path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        return path

    def close(self) -> None:
        for p in self.participants.values():
            p.channel.close()
        self.running.stop(grace=1)


def _org_code(n: int) -> str:
    """A valid USCC per participant: body varies, check characters computed."""
    from credit_gateway.domain.identifiers import (
        organisation_code_check_character,
        uscc_check_character,
    )

    body8 = f"{n:08d}"
    org = body8 + organisation_code_check_character(body8)
    first17 = "91420100" + org
    return first17 + uscc_check_character(first17)


def start_harness(
    tmp: Path, certs_dir: Path, database_url: str, clock: Clock | None = None, **overrides: Any
) -> Harness:
    clock = clock or Clock()
    settings = Settings.load(
        environ={},
        home=tmp / "var",
        certs_dir=certs_dir,
        database_url=database_url,
        grpc_address="127.0.0.1:0",
        oauth_address=f"127.0.0.1:{free_port()}",  # the issuer URL names the port: chosen first
        **overrides,
    )
    initialise(settings)
    gateway = Gateway(settings, clock=clock)
    with gateway.db.transaction() as session:
        catalog_store.store_catalog(session, json.loads(CATALOG_FILE.read_text()), clock.now)
    running = start(settings, gateway)
    return Harness(settings, running, clock)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


# --- agreements and records, made the way their authors make them -----------------------------


def make_agreement(
    h: Harness,
    participant: Participant,
    *,
    agreement_id: str | None = None,
    operations: tuple[str, ...] = ("inquiry",),
    items: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    purposes: tuple[str, ...] = ("LOAN_APPROVAL",),
    levels: tuple[str, ...] = ("open", "authorized"),
    calls_per_day: int = 1000,
    records_per_day: int = 10_000,
    days: int = 365,
    starts_in_days: int = -1,
    subject_kinds: tuple[str, ...] = ("natural_person", "legal_person", "other_organisation"),
    register: bool = True,
) -> dict[str, Any]:
    """Drafts, signs (center + counterparty) and registers an agreement; returns the document."""
    from credit_gateway.adapters.storage import agreements as agreement_store
    from credit_gateway.adapters.storage import trust
    from credit_gateway.domain.agreements import Agreement, Operation, Quotas
    from credit_gateway.domain.catalog import Category, DisclosureLevel
    from credit_gateway.domain.identifiers import SubjectKind
    from credit_gateway.exchange import agreements as signing

    now = h.clock.now
    agreement = Agreement(
        id=agreement_id or f"agr-{participant.id}",
        counterparty=participant.id,
        operations=frozenset(Operation(o) for o in operations),
        items=frozenset(items),
        categories=frozenset(Category(c) for c in categories),
        purposes=frozenset(purposes),
        levels=frozenset(DisclosureLevel(v) for v in levels),
        subject_kinds=frozenset(SubjectKind(k) for k in subject_kinds),
        quotas=Quotas(calls_per_day, records_per_day),
        valid_from=now + timedelta(days=starts_in_days),
        valid_until=now + timedelta(days=starts_in_days + days),
    )
    document = signing.draft(agreement)
    document = signing.sign(
        document, "center", signing.load_private_key(h.settings.operator_key_file)
    )
    document = signing.sign(
        document, participant.id, signing.load_private_key(participant.cert.key_path)
    )
    if register:
        center = signing.load_private_key(h.settings.operator_key_file).public_key()
        with h.db.transaction() as session:
            verified = signing.verify(
                document, center, trust.participant_jwks(session, participant.id), now
            )
            agreement_store.register_agreement(
                session, verified, json.dumps(document).encode(), now
            )
    return document


def signed_record(
    participant: Participant,
    *,
    record_id: str,
    item: str,
    subject: str,
    payload: dict[str, Any],
    occurred_at: datetime,
    notice: str = "",
    delivered_at: datetime | None = None,
    kind: Any = None,
) -> Any:
    """A SubmittedRecord signed by the provider's key over the record's canonical bytes; with a
    `notice` (not empty), the Art 22 written notice of that number, delivered at `delivered_at`
    (by default when the record occurred); `kind` the SubjectKind the record names."""
    from credit_gateway.adapters.grpc import client
    from credit_gateway.domain.records import Submission, WrittenNotice
    from credit_gateway.exchange.agreements import load_private_key

    written = WrittenNotice(notice, delivered_at or occurred_at) if notice else None
    submission = Submission(
        participant.id, record_id, item, subject, payload, occurred_at, written, kind
    )
    key = load_private_key(participant.cert.key_path)
    return client.signed_record(submission, key, participant.cert.x5t_s256)
