"""Trust, end to end over the real server: OAuth tokens from the real token endpoint, bound to
the caller's certificate; every way a token, a participant or an agreement (Art 20) is refused;
the agreements CLI; signing-key rotation."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import grpc
import jwt as pyjwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey
from sqlalchemy import func, select
from support.audit_entries import INQUIRIES
from support.harness import (
    COMPANY,
    PERSON,
    Harness,
    Participant,
    make_agreement,
    metadata,
    signed_record,
)
from support.jose import forged
from support.rpc import reason_of
from support.scenario import consented

from credit_gateway.adapters.grpc.v1 import (
    common_pb2,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2_grpc,
)
from credit_gateway.adapters.http.oauth import JWT_BEARER_GRANT_TYPE
from credit_gateway.adapters.storage import agreements as agreement_store
from credit_gateway.adapters.storage import trust
from credit_gateway.adapters.storage.tables import AgreementRow, AuditEntryRow, QuotaUsageRow
from credit_gateway.auth.scopes import CONSENT_GRANTEE, PrincipalKind
from credit_gateway.cli.main import main as cli
from credit_gateway.domain.agreements import AgreementStatus
from credit_gateway.errors import FailedPrecondition, GatewayError, PeerError
from credit_gateway.exchange import agreements as signing
from credit_gateway.runtime import tls
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.runtime.server import start
from credit_gateway.services import operator as registry

AGREEMENT = "agr-zx-credit"
PURPOSE = "LOAN_APPROVAL"
CODE = grpc.StatusCode


@pytest.fixture(autouse=True)
def _no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI lets CREDIT_GATEWAY_* override its --config file: none may leak in from outside.
    for name in [n for n in os.environ if n.startswith("CREDIT_GATEWAY_")]:
        if name != "CREDIT_GATEWAY_TEST_DATABASES":
            monkeypatch.delenv(name)


# --- helpers ------------------------------------------------------------------------------------


def audit_log(h: Harness) -> list[dict[str, Any]]:
    with h.db.transaction(write=False) as session:
        query = select(AuditEntryRow.body).where(INQUIRIES).order_by(AuditEntryRow.seq)
        return [json.loads(body) for body in session.scalars(query)]


def count_rows(h: Harness, table: Any) -> int:
    with h.db.transaction(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def refused_unrecorded(
    h: Harness, call: Callable[[], object], code: grpc.StatusCode, reason: str
) -> None:
    """Refused by the interceptor, before any release path: no audit entry is written."""
    before = audit_log(h)
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert (caught.value.code(), reason_of(caught.value)) == (code, reason)
    assert audit_log(h) == before


def refused_recorded(
    h: Harness, call: Callable[[], object], code: grpc.StatusCode, reason: str
) -> None:
    """Refused by the release decision: the refusal is on record and nothing was released."""
    before = audit_log(h)
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert (caught.value.code(), reason_of(caught.value)) == (code, reason)
    after = audit_log(h)
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1
    entry = after[-1]
    assert (entry["outcome"], entry["reasons"], entry["released"]) == ("REFUSED", [reason], [])


class TokenEndpoint:
    """The gateway's real OAuth endpoints, reached with authlib's standard requests client."""

    def __init__(self, h: Harness) -> None:
        self.base = h.settings.effective_issuer
        self.token_url = self.base + "/token"
        self.ca = str(h.settings.ca_cert)

    @staticmethod
    def cert(p: Participant) -> tuple[str, str]:
        return str(p.cert.cert_path), str(p.cert.key_path)

    def session(self, p: Participant) -> OAuth2Session:
        key = ECKey.import_key(p.cert.key_path.read_bytes(), {"kid": p.cert.x5t_s256})
        session = OAuth2Session(
            client_id=p.id,
            client_secret=key,
            token_endpoint_auth_method="private_key_jwt",
            revocation_endpoint_auth_method="private_key_jwt",
        )
        session.register_client_auth_method(
            PrivateKeyJWT(self.token_url, alg="ES256", headers={"kid": p.cert.x5t_s256})
        )
        session.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA
        return session

    def fetch(self, p: Participant, **form: str) -> str:
        with self.session(p) as session:
            token = session.fetch_token(
                self.token_url,
                grant_type="client_credentials",
                verify=self.ca,
                cert=self.cert(p),
                timeout=10,
                **form,
            )
        assert token["token_type"] == "Bearer", token
        return str(token["access_token"])

    def revoke(self, p: Participant, access_token: str) -> requests.Response:
        with self.session(p) as session:
            return cast(
                requests.Response,
                session.revoke_token(
                    self.base + "/revoke",
                    token=access_token,
                    verify=self.ca,
                    cert=self.cert(p),
                    timeout=10,
                ),
            )

    def post(self, p: Participant, path: str, form: dict[str, str]) -> requests.Response:
        """A plain form POST over `p`'s certificate (tls_client_auth unless the form says)."""
        with requests.Session() as plain:
            plain.trust_env = False
            return plain.post(
                self.base + path, data=form, verify=self.ca, cert=self.cert(p), timeout=10
            )

    def subject_assertion(self, provider: Participant, subject: str, now: int) -> str:
        """An identity provider's RFC 7523 assertion about `subject`, signed with its key."""
        claims = {
            "iss": provider.id,
            "sub": subject,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(16),
        }
        key = provider.cert.key_path.read_bytes()
        return pyjwt.encode(claims, key, algorithm="ES256", headers={"kid": provider.cert.x5t_s256})

    def jwks(self) -> dict[str, Any]:
        with requests.Session() as plain:
            plain.trust_env = False
            response = plain.get(self.base + "/jwks.json", verify=self.ca, timeout=10)
        assert response.status_code == 200
        return cast(dict[str, Any], response.json())


def pyjwt_verify(token: str, jwks: dict[str, Any], h: Harness) -> dict[str, Any]:
    """Verified with PyJWT, independent of the gateway's joserfc/authlib."""
    key = pyjwt.PyJWKSet.from_dict(jwks)[pyjwt.get_unverified_header(token)["kid"]]
    required: Any = {"require": ["exp", "iat", "iss", "aud", "sub", "jti"]}
    s = h.settings
    return cast(
        dict[str, Any],
        pyjwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            options=required,
            audience=s.audience,
            issuer=s.effective_issuer,
        ),
    )


@dataclass
class World:
    """A running gateway with a provider's record about COMPANY and a credit agency under
    agreement AGREEMENT: the open inquiry releases that record."""

    h: Harness
    agency: Participant
    oauth: TokenEndpoint

    def query(
        self,
        token: str | None,
        *,
        caller: Participant | None = None,
        agreement: str = AGREEMENT,
        purpose: str = PURPOSE,
        method: str = "QueryOpen",
    ) -> common_pb2.QueryResponse:
        stub = inquiry_pb2_grpc.InquiryServiceStub((caller or self.agency).channel)
        request = inquiry_pb2.QueryRequest(
            subject_code=COMPANY, purpose=purpose, agreement_id=agreement
        )
        md = metadata(token) if token is not None else ()
        return cast(
            common_pb2.QueryResponse, getattr(stub, method)(request, metadata=md, timeout=10)
        )

    def released(self, token: str, **kwargs: Any) -> list[str]:
        return [r.item_code for r in self.query(token, **kwargs).records]


@pytest.fixture
def world(harness: Harness) -> World:
    h = harness
    amr = h.add_participant("hubei-amr", "providing-unit")
    record = signed_record(
        amr,
        record_id="amr-1",
        item="REG.ENTERPRISE",
        subject=COMPANY,
        payload={"name": "Wuhan Example Co.", "established_on": "2015-03-01"},
        occurred_at=h.clock.now - timedelta(days=10),
    )
    result = submission_pb2_grpc.SubmissionServiceStub(amr.channel).SubmitRecords(
        iter([record]), metadata=metadata(h.token(amr)), timeout=10
    )
    assert result.accepted == 1, result
    agency = h.add_participant("zx-credit", "credit-agency")
    make_agreement(h, agency, agreement_id=AGREEMENT, categories=("registration",))
    return World(h, agency, TokenEndpoint(h))


# --- 1-2: tokens from the real token endpoint, bound to the certificate -------------------------


def test_token_from_the_endpoint_is_verifiable_and_opens_an_inquiry(world: World) -> None:
    h = world.h
    token = world.oauth.fetch(world.agency)
    claims = pyjwt_verify(token, world.oauth.jwks(), h)
    assert claims["sub"] == claims["client_id"] == "zx-credit"
    assert claims["cnf"] == {"x5t#S256": world.agency.cert.x5t_s256}
    assert pyjwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert world.released(token) == ["REG.ENTERPRISE"]
    assert [e["outcome"] for e in audit_log(h)] == ["RELEASED"]


def test_trickling_connections_do_not_keep_a_registered_client_from_its_token(
    world: World,
) -> None:
    """500 connections without a certificate, trickling a byte every 2 s from 50 addresses
    other than the client's (the old server had 64 slots): the registered client still gets a
    token within 1 s, and it opens an inquiry."""
    port = int(world.h.settings.oauth_address.rsplit(":", 1)[1])
    with contextlib.ExitStack() as stack:
        tricklers = [
            stack.enter_context(
                socket.create_connection(
                    ("127.0.0.1", port), timeout=5, source_address=(f"127.0.0.{2 + i % 50}", 0)
                )
            )
            for i in range(500)
        ]
        for byte in b"\x16\x03":  # the start of a TLS record, never finished
            for sock in tricklers:
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))
            started = time.monotonic()
            token = world.oauth.fetch(world.agency)
            assert time.monotonic() - started < 1.0
            time.sleep(2.0)
    assert world.released(token) == ["REG.ENTERPRISE"]


def test_token_over_another_participants_connection_is_not_bound(world: World) -> None:
    token = world.oauth.fetch(world.agency)
    thief = world.h.add_participant("other-agency", "credit-agency")
    refused_unrecorded(
        world.h,
        lambda: world.query(token, caller=thief),
        CODE.UNAUTHENTICATED,
        "TOKEN_NOT_BOUND",
    )


# --- 3: tokens and participants refused ---------------------------------------------------------


def test_no_token_is_refused(world: World) -> None:
    refused_unrecorded(world.h, lambda: world.query(None), CODE.UNAUTHENTICATED, "TOKEN_MISSING")


def test_alg_none_token_is_refused(world: World) -> None:
    genuine = world.h.token(world.agency)
    header = {**pyjwt.get_unverified_header(genuine), "alg": "none"}
    claims = pyjwt.decode(genuine, options={"verify_signature": False})
    token = forged(header, claims, None)
    refused_unrecorded(world.h, lambda: world.query(token), CODE.UNAUTHENTICATED, "TOKEN_INVALID")


def test_hs256_keyed_with_the_gateways_public_key_is_refused(world: World) -> None:
    # Key confusion: the attacker HMACs with the public key the gateway publishes.
    genuine = world.h.token(world.agency)
    header = {**pyjwt.get_unverified_header(genuine), "alg": "HS256"}
    public = pyjwt.PyJWKSet.from_dict(world.oauth.jwks())[header["kid"]].key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = pyjwt.decode(genuine, options={"verify_signature": False})
    token = forged(header, claims, pem)
    refused_unrecorded(world.h, lambda: world.query(token), CODE.UNAUTHENTICATED, "TOKEN_INVALID")


def test_expired_token_is_refused(world: World) -> None:
    h = world.h
    token = h.token(world.agency)
    assert world.released(token) == ["REG.ENTERPRISE"]
    s = h.settings
    h.clock.advance(seconds=s.access_token_ttl_seconds + s.clock_skew_seconds)
    refused_unrecorded(h, lambda: world.query(token), CODE.UNAUTHENTICATED, "TOKEN_EXPIRED")


def test_token_for_another_audience_is_refused(world: World) -> None:
    h = world.h
    # Signed with the gateway's own key and issuer: only the audience is wrong.
    other = dataclasses.replace(h.gateway.token_issuer, audience="another-service")
    token, _ = other.issue(
        client_id="zx-credit",
        subject="zx-credit",
        kind=PrincipalKind.PARTICIPANT,
        scopes=["inquiry.open"],
        cnf_x5t=world.agency.cert.x5t_s256,
        now=h.clock.now,
    )
    refused_unrecorded(h, lambda: world.query(token), CODE.UNAUTHENTICATED, "TOKEN_AUDIENCE")


def test_token_without_the_methods_scope_is_refused(world: World) -> None:
    token = world.oauth.fetch(world.agency, scope=CONSENT_GRANTEE)
    refused_unrecorded(world.h, lambda: world.query(token), CODE.PERMISSION_DENIED, "SCOPE_MISSING")


def test_subject_token_on_a_participant_method_is_refused(world: World) -> None:
    portal = world.h.add_participant("realname-portal", "identity-provider")
    token = world.h.subject_token(portal, COMPANY)
    refused_unrecorded(
        world.h,
        lambda: world.query(token, caller=portal),
        CODE.PERMISSION_DENIED,
        "WRONG_PRINCIPAL",
    )


def test_token_revoked_at_the_endpoint_is_refused_at_once(world: World) -> None:
    token = world.oauth.fetch(world.agency)
    assert world.released(token) == ["REG.ENTERPRISE"]  # verified and cached by the gateway
    response = world.oauth.revoke(world.agency, token)
    assert response.status_code == 200, response.text
    refused_unrecorded(world.h, lambda: world.query(token), CODE.UNAUTHENTICATED, "TOKEN_REVOKED")


def test_suspended_participant_is_refused(world: World) -> None:
    token = world.h.token(world.agency)
    registry.suspend_participant(world.h.settings, world.agency.id)
    refused_unrecorded(
        world.h, lambda: world.query(token), CODE.PERMISSION_DENIED, "PARTICIPANT_SUSPENDED"
    )


def test_agency_with_an_expired_licence_is_refused(world: World) -> None:
    h = world.h
    token = h.token(world.agency)
    with h.db.transaction() as session:
        trust.set_licence(session, world.agency.id, valid_until=h.clock.now - timedelta(days=1))
    refused_unrecorded(h, lambda: world.query(token), CODE.PERMISSION_DENIED, "LICENCE_EXPIRED")


def test_replayed_client_assertion_is_invalid_client(world: World) -> None:
    agency, oauth = world.agency, world.oauth
    now = int(world.h.clock.now.timestamp())
    claims = {
        "iss": agency.id,
        "sub": agency.id,
        "aud": oauth.token_url,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
    }
    assertion = pyjwt.encode(
        claims,
        agency.cert.key_path.read_bytes(),
        algorithm="ES256",
        headers={"kid": agency.cert.x5t_s256},
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }

    assert oauth.post(agency, "/token", form).status_code == 200
    second = oauth.post(agency, "/token", form)
    assert (second.status_code, second.json()["error"]) == (401, "invalid_client")
    assert "private_key_jwt" in second.headers["WWW-Authenticate"]


# --- 3b: the subject's tokens ------------------------------------------------------------------


def readable(token: str) -> str:
    """What anyone holding a token reads in it: its header and claims, as JSON."""
    header = pyjwt.get_unverified_header(token)
    return json.dumps([header, pyjwt.decode(token, options={"verify_signature": False})])


def test_no_token_names_the_identity_number(harness: Harness) -> None:
    """Issue item 13. Every kind of token the gateway mints, and what introspection tells, is
    free of the person's identity number; a subject token still acts for that person."""
    h = harness
    c = consented(h)
    oauth = TokenEndpoint(h)
    now = int(h.clock.now.timestamp())
    form = {
        "grant_type": JWT_BEARER_GRANT_TYPE,
        "assertion": oauth.subject_assertion(c.portal, PERSON, now),
        "client_id": c.portal.id,
    }
    response = oauth.post(c.portal, "/token", form)
    assert response.status_code == 200, response.text
    subject = response.json()["access_token"]

    consent_token = c.grant()  # GrantConsent with a subject token from the gateway's issuer
    assert [r.item_code for r in c.query(consent_token).records] == ["ADM.PUNISHMENT"]
    own = inquiry_pb2_grpc.InquiryServiceStub(c.portal.channel).QueryOwn(
        inquiry_pb2.OwnQueryRequest(), metadata=metadata(subject), timeout=10
    )
    assert [r.item_code for r in own.records] == ["ADM.PUNISHMENT"]  # PERSON's own record
    introspected = oauth.post(c.portal, "/introspect", {"token": subject, "client_id": c.portal.id})
    assert introspected.json()["active"] is True

    minted = {
        "subject token from the endpoint": readable(subject),
        "subject token from the issuer": readable(h.subject_token(c.portal, PERSON)),
        "participant token": readable(oauth.fetch(c.agency)),
        "consent token": readable(consent_token),
        "token response": response.text,
        "introspection": introspected.text,
    }
    for what, text in minted.items():
        assert PERSON not in text.upper(), what
        assert PERSON[:17] not in text, what


def test_a_providers_assertion_is_redeemed_by_that_provider_only(harness: Harness) -> None:
    """Issue item 14: another registered identity provider, over its own connection, cannot
    redeem it; the provider that signed it still can, since the refusal spent nothing."""
    h = harness
    c = consented(h)
    other = h.add_participant("other-portal", "identity-provider")
    oauth = TokenEndpoint(h)
    assertion = oauth.subject_assertion(c.portal, PERSON, int(h.clock.now.timestamp()))
    form = {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion}
    refused = oauth.post(other, "/token", {**form, "client_id": other.id})
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert "issued by another identity provider" in refused.json()["error_description"]
    assert oauth.post(c.portal, "/token", {**form, "client_id": c.portal.id}).status_code == 200


# --- 4: agreements (Art 20) ---------------------------------------------------------------------


def register(h: Harness, document: dict[str, Any]) -> None:
    """The registration path: both signatures verified, then stored."""
    center = signing.load_private_key(h.settings.operator_key_file).public_key()
    counterparty = document["agreement"]["counterparty"]
    with h.db.transaction() as session:
        verified = signing.verify(
            document, center, trust.participant_jwks(session, counterparty), h.clock.now
        )
        agreement_store.register_agreement(
            session, verified, json.dumps(document).encode(), h.clock.now
        )


def registration_refused(
    h: Harness, document: dict[str, Any], error: type[GatewayError], reason: str
) -> None:
    before = count_rows(h, AgreementRow)
    with pytest.raises(error) as caught:
        register(h, document)
    assert caught.value.reason == reason
    assert count_rows(h, AgreementRow) == before


def test_tampered_agreement_is_not_registered(world: World) -> None:
    document = make_agreement(world.h, world.agency, agreement_id="agr-2", register=False)
    document["agreement"]["quotas"]["calls_per_day"] = 1_000_000  # edited after signing
    registration_refused(world.h, document, PeerError, "AGREEMENT_BAD_SIGNATURE")


def test_agreement_without_the_counterpartys_signature_is_not_registered(world: World) -> None:
    document = make_agreement(world.h, world.agency, agreement_id="agr-2", register=False)
    document["signatures"] = [s for s in document["signatures"] if s["signer"] == "center"]
    registration_refused(world.h, document, PeerError, "AGREEMENT_UNSIGNED")


def test_expired_agreement_is_not_registered(world: World) -> None:
    document = make_agreement(
        world.h, world.agency, agreement_id="agr-2", starts_in_days=-30, days=10, register=False
    )
    registration_refused(world.h, document, FailedPrecondition, "AGREEMENT_EXPIRED")


def test_agreement_that_expires_refuses_inquiries(world: World) -> None:
    h = world.h
    make_agreement(h, world.agency, agreement_id="agr-2", days=2, categories=("registration",))
    assert world.released(h.token(world.agency), agreement="agr-2") == ["REG.ENTERPRISE"]
    h.clock.advance(days=1, seconds=1)
    token = h.token(world.agency)
    refused_recorded(
        h,
        lambda: world.query(token, agreement="agr-2"),
        CODE.PERMISSION_DENIED,
        "AGREEMENT_EXPIRED",
    )


def test_agreement_not_yet_in_force_refuses_inquiries(world: World) -> None:
    h = world.h
    # Registered ahead of time (signed now, in force tomorrow): inquiries wait for valid_from.
    make_agreement(h, world.agency, agreement_id="agr-2", starts_in_days=1)
    token = h.token(world.agency)
    refused_recorded(
        h,
        lambda: world.query(token, agreement="agr-2"),
        CODE.PERMISSION_DENIED,
        "AGREEMENT_NOT_YET_VALID",
    )


def test_suspended_agreement_refuses_inquiries(world: World) -> None:
    h = world.h
    with h.db.transaction() as session:
        agreement_store.set_agreement_status(session, AGREEMENT, AgreementStatus.SUSPENDED)
    token = h.token(world.agency)
    refused_recorded(h, lambda: world.query(token), CODE.PERMISSION_DENIED, "AGREEMENT_SUSPENDED")


def test_purpose_outside_the_agreement_is_refused(world: World) -> None:
    token = world.h.token(world.agency)
    refused_recorded(
        world.h,
        lambda: world.query(token, purpose="RENTAL_SCREENING"),
        CODE.PERMISSION_DENIED,
        "PURPOSE_NOT_AGREED",
    )


def test_another_participants_agreement_cannot_be_named(world: World) -> None:
    h = world.h
    other = h.add_participant("other-agency", "credit-agency")
    make_agreement(h, other, agreement_id="agr-other", categories=("registration",))
    token = h.token(world.agency)
    refused_recorded(
        h,
        lambda: world.query(token, agreement="agr-other"),
        CODE.PERMISSION_DENIED,
        "AGREEMENT_OTHER_PARTY",
    )


def test_government_sharing_needs_the_operation_agreed(world: World) -> None:
    h = world.h
    department = h.add_participant("hubei-drc", "government-department")
    make_agreement(h, department, agreement_id="agr-drc", categories=("registration",))
    token = h.token(department)
    refused_recorded(
        h,
        lambda: world.query(
            token, caller=department, agreement="agr-drc", method="ShareGovernment"
        ),
        CODE.PERMISSION_DENIED,
        "OPERATION_NOT_AGREED",
    )


def calls_used(h: Harness, agreement_id: str) -> int:
    with h.db.transaction(write=False) as session:
        used = session.scalar(
            select(QuotaUsageRow.calls).where(QuotaUsageRow.agreement_id == agreement_id)
        )
    return int(used or 0)


def test_daily_call_quota_is_enforced_and_survives_a_restart(world: World) -> None:
    h = world.h
    make_agreement(
        h, world.agency, agreement_id="agr-2", calls_per_day=2, categories=("registration",)
    )
    token = h.token(world.agency)
    for _ in range(2):
        assert world.released(token, agreement="agr-2") == ["REG.ENTERPRISE"]
    refused_recorded(
        h,
        lambda: world.query(token, agreement="agr-2"),
        CODE.RESOURCE_EXHAUSTED,
        "QUOTA_CALLS_EXHAUSTED",
    )
    assert calls_used(h, "agr-2") == 2  # refusals do not count as calls

    # A new process on the same database and settings still knows today's count.
    h.running.stop(grace=1)
    restarted = start(h.settings, Gateway(h.settings, clock=h.clock))
    try:
        credentials = tls.grpc_channel_credentials(
            h.settings.ca_cert, world.agency.cert.cert_path, world.agency.cert.key_path
        )
        with grpc.secure_channel(f"localhost:{restarted.port}", credentials) as channel:
            again = Participant(world.agency.id, world.agency.kind, world.agency.cert, channel)
            refused_recorded(
                h,
                lambda: world.query(token, caller=again, agreement="agr-2"),
                CODE.RESOURCE_EXHAUSTED,
                "QUOTA_CALLS_EXHAUSTED",
            )
    finally:
        restarted.stop(grace=1)
    assert calls_used(h, "agr-2") == 2


# --- 5: the agreements CLI ----------------------------------------------------------------------


@pytest.fixture
def config(harness: Harness, tmp_path: Path) -> Path:
    return harness.write_config(tmp_path / "gateway.toml")


def test_agreement_drafted_signed_and_registered_with_the_cli(
    world: World, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h, agency = world.h, world.agency
    file = str(tmp_path / "agr-cli.json")
    now = h.clock.now
    base = ["--config", str(config), "agreements"]
    draft = [
        *("draft", "--id", "agr-cli", "--counterparty", agency.id, "--operations", "inquiry"),
        *("--categories", "registration", "--purposes", PURPOSE, "--levels", "open"),
        *("--valid-from", (now - timedelta(days=1)).isoformat()),
        *("--valid-until", (now + timedelta(days=90)).isoformat(), "--out", file),
    ]
    assert cli([*base, *draft]) == 0
    assert cli([*base, "sign", file, "--as-center"]) == 0
    assert cli([*base, "sign", file, "--key", str(agency.cert.key_path)]) == 0
    assert cli([*base, "register", file]) == 0
    capsys.readouterr()
    assert cli([*base, "list"]) == 0
    listed = {
        json.loads(line)["id"]: json.loads(line) for line in capsys.readouterr().out.splitlines()
    }
    assert listed["agr-cli"]["counterparty"] == agency.id
    assert listed["agr-cli"]["status"] == "active"
    # The running gateway acts on it at once.
    assert world.released(h.token(agency), agreement="agr-cli") == ["REG.ENTERPRISE"]


def test_tampered_agreement_file_is_refused_by_the_cli(
    world: World, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agr-cli.json"
    document = make_agreement(world.h, world.agency, agreement_id="agr-cli", register=False)
    document["agreement"]["purposes"].append("RENTAL_SCREENING")  # widened after signing
    path.write_text(json.dumps(document))
    capsys.readouterr()
    assert cli(["--config", str(config), "agreements", "register", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("credit-gateway: error: agreement signature does not verify")
    assert count_rows(world.h, AgreementRow) == 1  # only the fixture's


# --- 6: signing-key rotation --------------------------------------------------------------------


def test_key_rotation_keeps_old_tokens_until_they_expire(world: World, config: Path) -> None:
    h, oauth, agency = world.h, world.oauth, world.agency
    old = oauth.fetch(agency)
    old_kid = pyjwt.get_unverified_header(old)["kid"]

    assert cli(["--config", str(config), "keys", "rotate"]) == 0
    h.gateway.reload_keys()  # what the gateway does by itself within KEY_REFRESH_SECONDS

    jwks = oauth.jwks()
    new = oauth.fetch(agency)
    new_kid = pyjwt.get_unverified_header(new)["kid"]
    assert new_kid != old_kid
    assert sorted(k["kid"] for k in jwks["keys"]) == sorted([old_kid, new_kid])
    for token in (old, new):
        pyjwt_verify(token, jwks, h)
        assert world.released(token) == ["REG.ENTERPRISE"]

    s = h.settings
    h.clock.advance(seconds=s.access_token_ttl_seconds + s.clock_skew_seconds)
    refused_unrecorded(h, lambda: world.query(old), CODE.UNAUTHENTICATED, "TOKEN_EXPIRED")
