"""The OAuth 2.0 authorization server: in-process through `handle`, and over real mutual TLS."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

import jwt as pyjwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey
from support.jose import forged

from credit_gateway.adapters.http.oauth import (
    CLIENT_ASSERTION_TYPE,
    JWT_BEARER_GRANT_TYPE,
    GatewayAuthorizationServer,
    GatewayOAuth2Request,
    parse_form,
)
from credit_gateway.adapters.http.server import HttpRequest, HttpResponse, HttpsServer, serve_https
from credit_gateway.auth.keyring import KeyRing, KeyState, SigningKey
from credit_gateway.auth.ports import Client
from credit_gateway.auth.scopes import (
    CONSENT_GRANTEE,
    INQUIRY_AUTHORIZED,
    INQUIRY_OPEN,
    SUBJECT_CONSENT,
    SUBJECT_SCOPES,
    SUBJECT_SELF,
    SUBMISSION,
    PrincipalKind,
)
from credit_gateway.auth.tokens import TokenIssuer, TokenVerifier
from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.pseudonyms import SubjectPseudonyms
from credit_gateway.devpki.pki import IssuedCert
from credit_gateway.domain.participants import (
    Licence,
    Participant,
    ParticipantKind,
    ParticipantStatus,
)
from credit_gateway.errors import ConfigError

T = TypeVar("T")
AUDIENCE = "credit-gateway"
TTL = timedelta(minutes=10)
FORM = {"content-type": "application/x-www-form-urlencoded"}
AGENCY_SCOPES = frozenset({INQUIRY_OPEN, INQUIRY_AUTHORIZED, CONSENT_GRANTEE})
PLATFORM_SCOPES = frozenset({INQUIRY_OPEN, SUBMISSION})
RESIDENT_ID = "11010519491231002x"  # GB 11643 Annex-style example; normalises to ...002X
USCC = "91350100M000100Y43"


# --- test doubles


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class MemoryTrustStore:
    """In-memory TrustStore (the protocol in auth/ports.py)."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.assertions: dict[tuple[str, str], datetime] = {}
        self.revoked: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def consume_assertion(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        with self._lock:
            if (issuer, jti) in self.assertions:
                return False
            self.assertions[issuer, jti] = expires_at
            return True

    def revoke_token(self, jti: str, expires_at: datetime) -> None:
        with self._lock:
            self.revoked[jti] = expires_at

    def is_revoked(self, jti: str) -> bool:
        return jti in self.revoked


def challenge(issuer: str) -> str:
    """The WWW-Authenticate of a failed client authentication: one challenge per method."""
    return f'private_key_jwt realm="{issuer}", tls_client_auth realm="{issuer}"'


def signing_key(kid: str, state: KeyState = KeyState.CURRENT) -> SigningKey:
    return SigningKey(kid, state, ec.generate_private_key(ec.SECP256R1()))


def der(cert: IssuedCert) -> bytes:
    pem = cert.cert_path.read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def private_jwk(cert: IssuedCert) -> ECKey:
    return ECKey.import_key(cert.key_path.read_bytes(), {"kid": cert.x5t_s256})


def client_for(cert: IssuedCert, participant: Participant) -> Client:
    public = ECKey.import_key(
        private_jwk(cert).as_dict(private=False), {"alg": "ES256", "use": "sig"}
    )
    return Client(
        participant=participant,
        jwks={"keys": [public.as_dict(private=False)]},
        certificate_thumbprints=frozenset({cert.x5t_s256}),
    )


class World:
    """One authorization server with registered participants, a store, a clock and a keyring."""

    def __init__(self, pki: Any, issuer_url: str = "https://as.example.test") -> None:
        self.pki = pki
        self.issuer_url = issuer_url
        self.token_endpoint = issuer_url + "/token"
        self.clock = Clock()
        self.store = MemoryTrustStore()
        self.ring = KeyRing([signing_key("k1")])
        self.subjects = SubjectPseudonyms(MasterKey(secrets.token_bytes(32)))
        self.issuer = TokenIssuer(self.keys, issuer_url, AUDIENCE, TTL, self.subjects)
        self.server = GatewayAuthorizationServer(
            store=self.store,
            issuer=self.issuer,
            keyring=self.keys,
            issuer_url=issuer_url,
            clock=self.clock,
        )
        self.register("agency", ParticipantKind.CREDIT_AGENCY, AGENCY_SCOPES, pki.agency)
        self.register(
            "platform", ParticipantKind.PROVINCIAL_PLATFORM, PLATFORM_SCOPES, pki.platform
        )
        self.register("idp", ParticipantKind.IDENTITY_PROVIDER, frozenset(), pki.idp)

    def keys(self) -> KeyRing:
        """The keyring as of now: what the gateway's `current_keyring` is to its server."""
        return self.ring

    def register(
        self,
        pid: str,
        kind: ParticipantKind,
        scopes: frozenset[str],
        cert: IssuedCert,
        *,
        status: ParticipantStatus = ParticipantStatus.ACTIVE,
        licence: Licence | None = None,
    ) -> None:
        if kind is ParticipantKind.CREDIT_AGENCY and licence is None:
            licence = Licence("L-1", self.clock() + timedelta(days=365))
        participant = Participant(pid, kind, "org", pid, status, scopes, licence)
        self.store.clients[pid] = client_for(cert, participant)

    # ---- assertions

    def claims(self, iss: str, sub: str, /, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "iss": iss,
            "sub": sub,
            "aud": self.token_endpoint,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, cert: IssuedCert, claims: dict[str, Any]) -> str:
        header = {"alg": "ES256", "kid": cert.x5t_s256}
        return jwt.encode(header, claims, private_jwk(cert), algorithms=["ES256"])

    def client_assertion(self, cert: IssuedCert, client_id: str, **overrides: Any) -> str:
        return self.sign(cert, self.claims(client_id, client_id, **overrides))

    def pkjwt(self, cert: IssuedCert, client_id: str, **overrides: Any) -> dict[str, str]:
        return {
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(cert, client_id, **overrides),
        }

    # ---- requests

    def post(self, path: str, form: dict[str, str], cert: IssuedCert | None) -> HttpResponse:
        body = urlencode(form).encode()
        request = HttpRequest("POST", path, FORM, body, der(cert) if cert else None)
        return self.server.handle(request)

    def call(
        self, path: str, form: dict[str, str], cert: IssuedCert | None
    ) -> tuple[int, dict[str, Any]]:
        response = self.post(path, form, cert)
        return response.status, json.loads(response.body)

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        response = self.server.handle(HttpRequest("GET", path))
        return response.status, json.loads(response.body)

    def participant_token(self, cert: IssuedCert, client_id: str, **form: str) -> dict[str, Any]:
        status, body = self.call(
            "/token",
            {"grant_type": "client_credentials", **self.pkjwt(cert, client_id), **form},
            cert,
        )
        assert status == 200, body
        return body

    def subject_token_request(
        self, assertion: str, *, provider: str = "idp", cert: IssuedCert | None = None, **form: str
    ) -> tuple[int, dict[str, Any]]:
        """The JWT-bearer grant, presented by `provider` over `cert` (idp's own by default)."""
        request = {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion, **form}
        return self.call("/token", {**request, "client_id": provider}, cert or self.pki.idp)

    def verifier(self) -> TokenVerifier:
        skew = timedelta(seconds=30)
        return TokenVerifier(self.keys, self.issuer_url, AUDIENCE, skew, self.subjects)

    def verify(self, token: str, cert: IssuedCert) -> Any:
        return self.verifier().verify(token, cert.x5t_s256, self.clock())


@pytest.fixture
def world(oauth_pki: Any) -> World:
    return World(oauth_pki)


class Live:
    """A World behind the real HTTPS server on 127.0.0.1, whose event loop has its own thread
    (as in the gateway) and whose blocking `handle` runs in a pool."""

    def __init__(self, pki: Any, context: ssl.SSLContext) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="oauth-loop")
        self._thread.start()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="oauth-db")
        holder: list[World] = []
        self.https: HttpsServer = self._in_loop(
            serve_https(
                lambda request: holder[0].server.handle(request),
                "127.0.0.1",
                0,
                context,
                run=self._run,
            )
        )
        self.world = World(pki, f"https://127.0.0.1:{self.https.port}")
        holder.append(self.world)
        self.base = self.world.issuer_url
        self.ca = str(pki.paths.ca_cert)

    def _run(self, call: Callable[[], HttpResponse]) -> Awaitable[HttpResponse]:
        return self.loop.run_in_executor(self._pool, call)

    def _in_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def close(self) -> None:
        self._in_loop(self.https.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
        self._pool.shutdown()

    @staticmethod
    def cert(issued: IssuedCert) -> tuple[str, str]:
        return str(issued.cert_path), str(issued.key_path)

    def post(
        self, path: str, data: dict[str, str], issued: IssuedCert | None, **kw: Any
    ) -> requests.Response:
        cert = self.cert(issued) if issued else None
        return requests.post(
            self.base + path, data=data, cert=cert, verify=self.ca, timeout=10, **kw
        )

    def session(self, issued: IssuedCert, client_id: str, **kw: Any) -> OAuth2Session:
        session = OAuth2Session(
            client_id=client_id,
            client_secret=private_jwk(issued),
            token_endpoint_auth_method="private_key_jwt",
            revocation_endpoint_auth_method="private_key_jwt",
            **kw,
        )
        session.register_client_auth_method(
            PrivateKeyJWT(self.world.token_endpoint, alg="ES256", headers={"kid": issued.x5t_s256})
        )
        session.cert = self.cert(issued)
        session.verify = self.ca
        # Else REQUESTS_CA_BUNDLE from the environment overrides session.verify.
        session.trust_env = False
        return session


@pytest.fixture
def live(oauth_pki: Any, oauth_server_context: ssl.SSLContext) -> Iterator[Live]:
    server = Live(oauth_pki, oauth_server_context)
    try:
        yield server
    finally:
        server.close()


def pyjwt_verify(token: str, jwks: dict[str, Any], issuer: str) -> dict[str, Any]:
    """Verify with PyJWT, a library independent of authlib/joserfc."""
    header = pyjwt.get_unverified_header(token)
    key = pyjwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims: dict[str, Any] = pyjwt.decode(
        token,
        key.key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    return claims


# --- over real mTLS


def test_authlib_client_gets_a_token_with_private_key_jwt_over_mtls(live: Live) -> None:
    pki = live.world.pki
    session = live.session(pki.agency, "agency", scope=INQUIRY_OPEN)
    token = session.fetch_token(live.world.token_endpoint, grant_type="client_credentials")

    assert token["token_type"] == "Bearer"
    assert token["scope"] == INQUIRY_OPEN
    assert token["expires_in"] == int(TTL.total_seconds())
    jwks = requests.get(live.base + "/jwks.json", verify=live.ca, timeout=10).json()
    header = pyjwt.get_unverified_header(token["access_token"])
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] == "k1"
    claims = pyjwt_verify(token["access_token"], jwks, live.base)
    assert claims["sub"] == claims["client_id"] == "agency"
    assert claims["cnf"] == {"x5t#S256": pki.agency.x5t_s256}
    assert claims["scope"] == INQUIRY_OPEN
    assert claims["principal"] == PrincipalKind.PARTICIPANT.value
    # The gateway's own verifier accepts it over the same certificate.
    principal = live.world.verify(token["access_token"], pki.agency)
    assert principal.kind is PrincipalKind.PARTICIPANT
    assert principal.scopes == frozenset({INQUIRY_OPEN})


def test_authlib_client_revokes_and_introspects_over_mtls(live: Live) -> None:
    pki = live.world.pki
    session = live.session(pki.agency, "agency")
    token = session.fetch_token(live.world.token_endpoint, grant_type="client_credentials")
    access = token["access_token"]
    jti = pyjwt.decode(access, options={"verify_signature": False})["jti"]

    seen = session.introspect_token(live.base + "/introspect", token=access).json()
    assert seen["active"] is True
    assert seen["client_id"] == "agency"
    assert seen["cnf"] == {"x5t#S256": pki.agency.x5t_s256}
    assert set(seen["scope"].split()) == AGENCY_SCOPES

    revoked = session.revoke_token(live.base + "/revoke", token=access)
    assert revoked.status_code == 200
    assert live.world.store.is_revoked(jti)
    seen = session.introspect_token(live.base + "/introspect", token=access).json()
    assert seen == {"active": False}


def test_tls_client_auth_over_mtls(live: Live) -> None:
    pki = live.world.pki
    form = {"grant_type": "client_credentials", "client_id": "platform"}
    response = live.post("/token", form, pki.platform)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    claims = pyjwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"x5t#S256": pki.platform.x5t_s256}
    assert set(claims["scope"].split()) == PLATFORM_SCOPES


def test_unregistered_certificate_is_refused_over_mtls(live: Live) -> None:
    pki = live.world.pki
    # A certificate from our CA, but not one registered for "platform".
    form = {"grant_type": "client_credentials", "client_id": "platform"}
    response = live.post("/token", form, pki.stranger)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == challenge(live.base)
    assert response.json()["error"] == "invalid_client"
    # ...nor for itself: it is no client at all.
    response = live.post("/token", {**form, "client_id": "stranger"}, pki.stranger)
    assert response.json()["error"] == "invalid_client"
    # And no certificate at all.
    response = live.post("/token", form, None)
    assert response.json()["error"] == "invalid_client"


def test_private_key_jwt_over_another_participants_connection_is_refused(live: Live) -> None:
    pki = live.world.pki
    form = {"grant_type": "client_credentials", **live.world.pkjwt(pki.agency, "agency")}
    response = live.post("/token", form, pki.platform)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert "certificate" in body["error_description"]
    # A valid assertion with no TLS client certificate at all fails the same way.
    form = {"grant_type": "client_credentials", **live.world.pkjwt(pki.agency, "agency")}
    assert live.post("/token", form, None).json()["error"] == "invalid_client"


def test_https_transport_limits(live: Live) -> None:
    pki = live.world.pki
    big = {"grant_type": "client_credentials", "padding": "x" * (64 * 1024)}
    assert live.post("/token", big, pki.agency).status_code == 413
    as_json = requests.post(
        live.base + "/token",
        json={"grant_type": "client_credentials"},
        cert=live.cert(pki.agency),
        verify=live.ca,
        timeout=10,
    )
    assert as_json.status_code == 415
    assert requests.get(live.base + "/nope", verify=live.ca, timeout=10).status_code == 404
    # Discovery needs no client certificate.
    meta = requests.get(
        live.base + "/.well-known/oauth-authorization-server", verify=live.ca, timeout=10
    )
    assert meta.status_code == 200
    assert meta.json()["token_endpoint"] == live.world.token_endpoint


def test_https_refuses_tls_below_1_3(live: Live) -> None:
    context = ssl.create_default_context(cafile=live.ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", live.https.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


# --- client authentication


def test_replayed_client_assertion_is_refused(world: World) -> None:
    form = {"grant_type": "client_credentials", **world.pkjwt(world.pki.agency, "agency")}
    assert world.call("/token", form, world.pki.agency)[0] == 200
    status, body = world.call("/token", form, world.pki.agency)
    assert (status, body["error"]) == (401, "invalid_client")
    assert "used before" in body["error_description"]


def _bad_assertions(world: World) -> dict[str, str]:
    agency = world.pki.agency
    claims = world.claims("agency", "agency")
    public_pem = agency.cert_path.read_bytes()  # what a key-confusion attacker has
    jwk_json = json.dumps(world.store.clients["agency"].jwks["keys"][0]).encode()
    now = int(world.clock().timestamp())
    return {
        "alg none": forged({"alg": "none"}, claims, None),
        "HS256 keyed with the certificate": forged(
            {"alg": "HS256", "kid": agency.x5t_s256}, claims, public_pem
        ),
        "HS256 keyed with the public JWK": forged(
            {"alg": "HS256", "kid": agency.x5t_s256}, claims, jwk_json
        ),
        "expired": world.client_assertion(agency, "agency", iat=now - 600, exp=now - 120),
        "wrong audience": world.client_assertion(agency, "agency", aud="https://elsewhere"),
        "no jti": world.client_assertion(agency, "agency", jti=None),
        "no exp": world.client_assertion(agency, "agency", exp=None),
        "issued in the future": world.client_assertion(agency, "agency", iat=now + 3600),
        "lifetime too long": world.client_assertion(agency, "agency", exp=now + 86400),
        "sub is not iss": world.sign(agency, world.claims("agency", "platform")),
        "signed by another participant": world.sign(
            world.pki.platform, world.claims("agency", "agency")
        ),
        "not a JWT": "not-a-jwt",
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "HS256 keyed with the certificate",
        "HS256 keyed with the public JWK",
        "expired",
        "wrong audience",
        "no jti",
        "no exp",
        "issued in the future",
        "lifetime too long",
        "sub is not iss",
        "signed by another participant",
        "not a JWT",
    ],
)
def test_bad_client_assertion_is_refused(world: World, case: str) -> None:
    assertion = _bad_assertions(world)[case]
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    status, body = world.call("/token", form, world.pki.agency)
    assert (status, body["error"]) == (401, "invalid_client"), body


def test_assertion_audience_may_be_the_issuer(world: World) -> None:
    form = {
        "grant_type": "client_credentials",
        **world.pkjwt(world.pki.agency, "agency", aud=world.issuer_url),
    }
    assert world.call("/token", form, world.pki.agency)[0] == 200


def test_client_id_must_match_the_assertion(world: World) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "platform",
        **world.pkjwt(world.pki.agency, "agency"),
    }
    assert world.call("/token", form, world.pki.agency)[1]["error"] == "invalid_client"


def test_tls_client_auth_needs_a_registered_certificate(world: World) -> None:
    pki = world.pki
    form = {"grant_type": "client_credentials", "client_id": "agency"}
    assert world.call("/token", form, pki.agency)[0] == 200
    assert world.call("/token", form, pki.platform)[1]["error"] == "invalid_client"
    assert world.call("/token", form, None)[1]["error"] == "invalid_client"
    # Without client_id there is no method to authenticate with at all.
    assert (
        world.call("/token", {"grant_type": "client_credentials"}, pki.agency)[1]["error"]
        == "invalid_client"
    )


def test_suspended_participant_is_refused(world: World) -> None:
    world.register(
        "agency",
        ParticipantKind.CREDIT_AGENCY,
        AGENCY_SCOPES,
        world.pki.agency,
        status=ParticipantStatus.SUSPENDED,
    )
    form = {"grant_type": "client_credentials", **world.pkjwt(world.pki.agency, "agency")}
    status, body = world.call("/token", form, world.pki.agency)
    assert (status, body["error"]) == (400, "unauthorized_client")
    assert "suspended" in body["error_description"]


def test_expired_or_revoked_licence_is_refused(world: World) -> None:
    form = {"grant_type": "client_credentials", "client_id": "agency"}
    world.clock.advance(timedelta(days=366))
    status, body = world.call("/token", form, world.pki.agency)
    assert (status, body["error"]) == (400, "unauthorized_client")
    assert "expired" in body["error_description"]

    licence = Licence("L-1", world.clock() + timedelta(days=30), revoked=True)
    world.register(
        "agency", ParticipantKind.CREDIT_AGENCY, AGENCY_SCOPES, world.pki.agency, licence=licence
    )
    assert world.call("/token", form, world.pki.agency)[1]["error"] == "unauthorized_client"


# --- scopes


def test_scope_is_narrowed_to_the_request(world: World) -> None:
    token = world.participant_token(world.pki.agency, "agency", scope=INQUIRY_OPEN)
    assert token["scope"] == INQUIRY_OPEN
    both = f"{INQUIRY_AUTHORIZED} {INQUIRY_OPEN}"
    assert world.participant_token(world.pki.agency, "agency", scope=both)["scope"] == both


def test_no_scope_asked_gives_all_registered_scopes(world: World) -> None:
    token = world.participant_token(world.pki.agency, "agency")
    assert frozenset(token["scope"].split()) == AGENCY_SCOPES


@pytest.mark.parametrize(
    "scope", [SUBMISSION, f"{INQUIRY_OPEN} {SUBMISSION}", "bogus", SUBJECT_SELF]
)
def test_scope_outside_the_registration_is_invalid(world: World, scope: str) -> None:
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        **world.pkjwt(world.pki.agency, "agency"),
    }
    status, body = world.call("/token", form, world.pki.agency)
    assert (status, body["error"]) == (400, "invalid_scope")


# --- subjects (RFC 7523 2.1)


def test_identity_provider_gets_a_subject_token(world: World) -> None:
    assertion = world.sign(world.pki.idp, world.claims("idp", RESIDENT_ID))
    status, body = world.subject_token_request(assertion)
    assert status == 200, body
    assert frozenset(body["scope"].split()) == SUBJECT_SCOPES  # its own and audit.proof
    principal = world.verify(body["access_token"], world.pki.idp)
    assert principal.kind is PrincipalKind.SUBJECT
    assert principal.id == RESIDENT_ID.upper()  # normalised
    assert principal.client_id == "idp"
    assert principal.cnf == world.pki.idp.x5t_s256


def test_no_subject_token_nor_its_introspection_names_the_identity_number(world: World) -> None:
    """Issue item 13: the token's sub is a pseudonym; the gateway still knows whom it is for."""
    assertion = world.sign(world.pki.idp, world.claims("idp", RESIDENT_ID))
    status, body = world.subject_token_request(assertion)
    assert status == 200, body
    access = body["access_token"]
    header = pyjwt.get_unverified_header(access)
    claims = pyjwt.decode(access, options={"verify_signature": False})
    status, seen = world.call("/introspect", {"token": access, "client_id": "idp"}, world.pki.idp)
    assert (status, seen["active"]) == (200, True)
    for readable in (json.dumps(body), json.dumps([header, claims]), json.dumps(seen)):
        assert RESIDENT_ID.upper() not in readable.upper()
    assert seen["sub"] == claims["sub"] == world.subjects.pseudonym(RESIDENT_ID.upper(), "idp")
    assert world.verify(access, world.pki.idp).id == RESIDENT_ID.upper()


def test_subject_token_with_private_key_jwt_and_narrow_scope(world: World) -> None:
    assertion = world.sign(world.pki.idp, world.claims("idp", RESIDENT_ID))
    form = {
        "grant_type": JWT_BEARER_GRANT_TYPE,
        "assertion": assertion,
        "scope": SUBJECT_SELF,
        **world.pkjwt(world.pki.idp, "idp"),
    }
    status, body = world.call("/token", form, world.pki.idp)
    assert status == 200, body
    assert body["scope"] == SUBJECT_SELF
    assert world.verify(body["access_token"], world.pki.idp).id == RESIDENT_ID.upper()


def test_a_portal_asserts_a_person_never_an_organisation(world: World) -> None:
    """Issue #11 item 1: a real-name portal's assertion names a natural person, so its code is
    read as a resident id number only: a USCC is not a subject it can assert, and a code that
    is both (121101190408136711) is the person, without asking which."""
    status, body = world.subject_token_request(world.sign(world.pki.idp, world.claims("idp", USCC)))
    assert (status, body["error"]) == (400, "invalid_grant")
    ambiguous = "121101190408136711"
    assertion = world.sign(world.pki.idp, world.claims("idp", ambiguous))
    status, body = world.subject_token_request(assertion)
    assert status == 200, body
    assert world.verify(body["access_token"], world.pki.idp).id == ambiguous


def test_subject_assertions_that_are_refused(world: World) -> None:
    pki = world.pki
    now = int(world.clock().timestamp())
    bad = {
        "unregistered issuer": world.sign(pki.rogue_idp, world.claims("rogue-idp", RESIDENT_ID)),
        "issuer is not an identity provider": world.sign(
            pki.agency, world.claims("agency", RESIDENT_ID)
        ),
        "issuer lies about who it is": world.sign(pki.rogue_idp, world.claims("idp", RESIDENT_ID)),
        "bad subject code": world.sign(pki.idp, world.claims("idp", "91350100M000100Y44")),
        "no subject": world.sign(pki.idp, world.claims("idp", RESIDENT_ID, sub=None)),
        "exp more than 10 minutes out": world.sign(
            pki.idp, world.claims("idp", RESIDENT_ID, exp=now + 3600)
        ),
        "no exp": world.sign(pki.idp, world.claims("idp", RESIDENT_ID, exp=None)),
        "expired": world.sign(pki.idp, world.claims("idp", RESIDENT_ID, exp=now - 120)),
        "audience is not the token endpoint": world.sign(
            pki.idp, world.claims("idp", RESIDENT_ID, aud=world.issuer_url)
        ),
        "no jti": world.sign(pki.idp, world.claims("idp", RESIDENT_ID, jti=None)),
        "alg none": forged({"alg": "none"}, world.claims("idp", RESIDENT_ID), None),
        "HS256 key confusion": forged(
            {"alg": "HS256"}, world.claims("idp", RESIDENT_ID), pki.idp.cert_path.read_bytes()
        ),
    }
    for case, assertion in bad.items():
        status, body = world.subject_token_request(assertion)
        assert (status, body["error"]) == (400, "invalid_grant"), case


def test_replayed_subject_assertion_is_refused(world: World) -> None:
    assertion = world.sign(world.pki.idp, world.claims("idp", RESIDENT_ID))
    assert world.subject_token_request(assertion)[0] == 200
    status, body = world.subject_token_request(assertion)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "used before" in body["error_description"]


def test_suspended_identity_provider_assertions_are_refused(world: World) -> None:
    world.register("idp2", ParticipantKind.IDENTITY_PROVIDER, frozenset(), world.pki.rogue_idp)
    assertion = world.sign(world.pki.rogue_idp, world.claims("idp2", RESIDENT_ID))
    assert (
        world.subject_token_request(assertion, provider="idp2", cert=world.pki.rogue_idp)[0] == 200
    )
    world.register(
        "idp2",
        ParticipantKind.IDENTITY_PROVIDER,
        frozenset(),
        world.pki.rogue_idp,
        status=ParticipantStatus.SUSPENDED,
    )
    assertion = world.sign(world.pki.rogue_idp, world.claims("idp2", RESIDENT_ID))
    status, body = world.subject_token_request(assertion, provider="idp2", cert=world.pki.rogue_idp)
    assert (status, body["error"]) == (400, "unauthorized_client")
    assert "suspended" in body["error_description"]


def test_only_the_issuing_provider_redeems_its_assertion(world: World) -> None:
    """Issue item 14: provider B (idp) redeeming provider A's (idp2) assertion, over B's own
    registered connection, is refused; A itself redeems the very same assertion afterwards,
    since the refusal did not spend its jti."""
    world.register("idp2", ParticipantKind.IDENTITY_PROVIDER, frozenset(), world.pki.rogue_idp)
    assertion = world.sign(world.pki.rogue_idp, world.claims("idp2", RESIDENT_ID))
    for auth in ({}, world.pkjwt(world.pki.idp, "idp")):  # tls_client_auth, private_key_jwt
        form = {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion, "client_id": "idp"}
        status, body = world.call("/token", {**form, **auth}, world.pki.idp)
        assert (status, body["error"]) == (400, "invalid_grant")
        assert body["error_description"] == (
            "the assertion was issued by another identity provider; only its issuer may redeem it"
        )
    status, body = world.subject_token_request(assertion, provider="idp2", cert=world.pki.rogue_idp)
    assert status == 200, body
    assert world.verify(body["access_token"], world.pki.rogue_idp).id == RESIDENT_ID.upper()


def test_subject_scope_outside_subject_scopes_is_invalid(world: World) -> None:
    assertion = world.sign(world.pki.idp, world.claims("idp", RESIDENT_ID))
    status, body = world.subject_token_request(assertion, scope=INQUIRY_OPEN)
    assert (status, body["error"]) == (400, "invalid_scope")
    # The assertion was not spent on the refused request.
    assert world.subject_token_request(assertion)[0] == 200


def test_grant_types_are_kept_to_their_kinds(world: World) -> None:
    assertion = world.sign(world.pki.idp, world.claims("idp", RESIDENT_ID))
    form = {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion, "client_id": "agency"}
    status, body = world.call("/token", form, world.pki.agency)
    assert (status, body["error"]) == (400, "unauthorized_client")
    form = {"grant_type": "client_credentials", "client_id": "idp"}
    assert world.call("/token", form, world.pki.idp)[1]["error"] == "unauthorized_client"
    form = {"grant_type": "password", "client_id": "agency"}
    assert world.call("/token", form, world.pki.agency)[1]["error"] == "unsupported_grant_type"


def test_subject_grant_needs_client_authentication(world: World) -> None:
    assertion = world.sign(world.pki.idp, world.claims("idp", RESIDENT_ID))
    form = {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion}
    assert world.call("/token", form, world.pki.idp)[1]["error"] == "invalid_client"
    form["client_id"] = "idp"
    assert world.call("/token", form, world.pki.platform)[1]["error"] == "invalid_client"
    del form["assertion"]
    assert world.call("/token", form, world.pki.idp)[1]["error"] == "invalid_request"


# --- revocation, introspection


def test_revocation_then_introspection(world: World) -> None:
    pki = world.pki
    access = world.participant_token(pki.agency, "agency")["access_token"]
    auth = {"client_id": "agency"}
    status, seen = world.call("/introspect", {"token": access, **auth}, pki.agency)
    assert status == 200
    assert seen["active"] is True
    assert seen["sub"] == "agency"
    assert seen["token_type"] == "Bearer"

    status, body = world.call("/revoke", {"token": access, **auth}, pki.agency)
    assert (status, body) == (200, {})
    jti = pyjwt.decode(access, options={"verify_signature": False})["jti"]
    assert world.store.is_revoked(jti)
    assert world.call("/introspect", {"token": access, **auth}, pki.agency)[1] == {"active": False}


def test_revoking_an_invalid_token_is_a_200(world: World) -> None:
    form = {"token": "garbage", "client_id": "agency"}
    assert world.call("/revoke", form, world.pki.agency) == (200, {})
    assert world.store.revoked == {}


def test_a_client_cannot_revoke_or_introspect_another_clients_token(world: World) -> None:
    pki = world.pki
    access = world.participant_token(pki.agency, "agency")["access_token"]
    form = {"token": access, "client_id": "platform"}
    status, body = world.call("/revoke", form, pki.platform)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert world.store.revoked == {}
    assert world.call("/introspect", form, pki.platform)[1] == {"active": False}


def test_introspection_needs_an_authenticated_client(world: World) -> None:
    access = world.participant_token(world.pki.agency, "agency")["access_token"]
    status, body = world.call("/introspect", {"token": access}, world.pki.agency)
    assert (status, body["error"]) == (401, "invalid_client")
    form = {"token": access, "client_id": "agency"}
    assert world.call("/introspect", form, world.pki.platform)[1]["error"] == "invalid_client"
    assert world.call("/revoke", form, None)[1]["error"] == "invalid_client"


def test_failed_client_authentication_is_a_401_with_a_challenge_on_every_endpoint(
    world: World,
) -> None:
    access = world.participant_token(world.pki.agency, "agency")["access_token"]
    unauthenticated = {
        "/token": {"grant_type": "client_credentials", "client_id": "agency"},
        "/introspect": {"token": access, "client_id": "agency"},
        "/revoke": {"token": access, "client_id": "agency"},
    }
    for path, form in unauthenticated.items():
        response = world.post(path, form, world.pki.platform)  # not agency's certificate
        assert response.status == 401, path
        assert ("WWW-Authenticate", challenge(world.issuer_url)) in response.headers, path
        assert ("Cache-Control", "no-store") in response.headers, path
        assert json.loads(response.body)["error"] == "invalid_client", path
    # Errors other than client authentication keep their 400, without a challenge.
    form = {"grant_type": "client_credentials", "scope": "bogus", "client_id": "agency"}
    response = world.post("/token", form, world.pki.agency)
    assert (response.status, json.loads(response.body)["error"]) == (400, "invalid_scope")
    assert all(name != "WWW-Authenticate" for name, _ in response.headers)


def test_expired_or_foreign_tokens_are_inactive(world: World) -> None:
    access = world.participant_token(world.pki.agency, "agency")["access_token"]
    form = {"token": access, "client_id": "agency"}
    world.clock.advance(TTL)
    assert world.call("/introspect", form, world.pki.agency)[1] == {"active": False}
    # Signed by a key that is not ours.
    stranger_ring = KeyRing([signing_key("k1")])
    stranger = TokenIssuer(lambda: stranger_ring, world.issuer_url, AUDIENCE, TTL, world.subjects)
    foreign, _ = stranger.issue(
        client_id="agency",
        subject="agency",
        kind=PrincipalKind.PARTICIPANT,
        scopes=[INQUIRY_OPEN],
        cnf_x5t=world.pki.agency.x5t_s256,
        now=world.clock(),
    )
    form["token"] = foreign
    assert world.call("/introspect", form, world.pki.agency)[1] == {"active": False}


# --- metadata, JWKS, rotation


def test_metadata_document(world: World) -> None:
    status, meta = world.get("/.well-known/oauth-authorization-server")
    assert status == 200
    base = world.issuer_url
    assert meta["issuer"] == base
    assert meta["token_endpoint"] == base + "/token"
    assert meta["jwks_uri"] == base + "/jwks.json"
    assert meta["revocation_endpoint"] == base + "/revoke"
    assert meta["introspection_endpoint"] == base + "/introspect"
    assert meta["grant_types_supported"] == ["client_credentials", JWT_BEARER_GRANT_TYPE]
    assert meta["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "tls_client_auth"]
    assert meta["token_endpoint_auth_signing_alg_values_supported"] == ["ES256"]
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert {INQUIRY_OPEN, SUBMISSION, SUBJECT_SELF, SUBJECT_CONSENT} <= set(
        meta["scopes_supported"]
    )
    # authlib's own RFC 8414 validators agree with the fields we publish.
    checked = AuthorizationServerMetadata(meta)
    for name in (
        "issuer",
        "token_endpoint",
        "jwks_uri",
        "scopes_supported",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "revocation_endpoint",
        "introspection_endpoint",
    ):
        getattr(checked, f"validate_{name}")()


def test_jwks_and_key_rotation(world: World) -> None:
    old = world.participant_token(world.pki.agency, "agency")["access_token"]
    status, jwks = world.get("/jwks.json")
    assert status == 200
    assert [k["kid"] for k in jwks["keys"]] == ["k1"]
    assert all("d" not in k for k in jwks["keys"])  # public halves only

    previous = SigningKey("k1", KeyState.PREVIOUS, world.ring.current.private_key)
    world.ring = KeyRing([previous, signing_key("k2")])

    _, jwks = world.get("/jwks.json")
    assert sorted(k["kid"] for k in jwks["keys"]) == ["k1", "k2"]
    assert pyjwt_verify(old, jwks, world.issuer_url)["sub"] == "agency"
    new = world.participant_token(world.pki.agency, "agency")["access_token"]
    assert pyjwt.get_unverified_header(new)["kid"] == "k2"
    assert pyjwt_verify(new, jwks, world.issuer_url)["sub"] == "agency"
    form = {"token": old, "client_id": "agency"}
    assert world.call("/introspect", form, world.pki.agency)[1]["active"] is True

    # Once the old key is retired its tokens are no longer ours.
    retired = SigningKey("k1", KeyState.RETIRED, previous.private_key)
    world.ring = KeyRing(
        [retired, SigningKey("k2", KeyState.CURRENT, world.ring.current.private_key)]
    )
    assert world.call("/introspect", form, world.pki.agency)[1] == {"active": False}


# --- adapter, no sockets


def test_routing_and_methods(world: World) -> None:
    response = world.server.handle(HttpRequest("GET", "/token"))
    assert response.status == 405
    assert ("Allow", "POST") in response.headers
    assert world.server.handle(HttpRequest("POST", "/jwks.json", FORM)).status == 405
    assert world.server.handle(HttpRequest("GET", "/elsewhere")).status == 404
    assert world.server.handle(HttpRequest("GET", "/jwks.json?x=1")).status == 200


def test_form_parsing_follows_rfc_6749() -> None:
    def request(body: bytes, headers: dict[str, str] = FORM) -> HttpRequest:
        return HttpRequest("POST", "/token", headers, body)

    assert parse_form(request(b"a=1&b=&c=x%20y")) == {"a": "1", "c": "x y"}
    with pytest.raises(Exception, match="repeated"):
        parse_form(request(b"scope=a&scope=b"))
    with pytest.raises(Exception, match="Content-Type"):
        parse_form(request(b"{}", {"content-type": "application/json"}))
    with pytest.raises(Exception, match="malformed"):
        parse_form(request(b"a=%ff"))
    with pytest.raises(Exception, match="malformed"):
        parse_form(request("&".join(f"k{i}=v" for i in range(100)).encode()))


def test_bad_form_becomes_an_rfc_6749_error(world: World) -> None:
    response = world.server.handle(
        HttpRequest("POST", "/token", FORM, b"grant_type=client_credentials&grant_type=x")
    )
    assert response.status == 400
    assert ("Content-Type", "application/json") in response.headers
    assert json.loads(response.body)["error"] == "invalid_request"


def test_oauth2_request_adapter_carries_the_certificate(world: World) -> None:
    http = HttpRequest("POST", "/token?ignored=1", FORM, b"grant_type=x", der(world.pki.agency))
    adapted = world.server.create_oauth2_request(http)
    assert isinstance(adapted, GatewayOAuth2Request)
    assert adapted.uri == world.issuer_url + "/token"
    assert adapted.payload.grant_type == "x"
    assert adapted.form == {"grant_type": "x"}
    assert adapted.args == {}
    assert adapted.client_x5t == world.pki.agency.x5t_s256
    assert world.server.create_oauth2_request(adapted) is adapted
    bare = world.server.create_oauth2_request(HttpRequest("POST", "/token", FORM, b""))
    assert bare.client_x5t is None


def test_configuration_is_checked(world: World) -> None:
    kwargs: dict[str, Any] = {"store": world.store, "keyring": world.keys, "clock": world.clock}
    with pytest.raises(ConfigError, match="issuer"):
        GatewayAuthorizationServer(issuer=world.issuer, issuer_url="https://other", **kwargs)
    plain = TokenIssuer(world.keys, "http://as", AUDIENCE, TTL, world.subjects)
    with pytest.raises(ConfigError, match="https"):
        GatewayAuthorizationServer(issuer=plain, issuer_url="http://as", **kwargs)
    # Signing with one keyring while publishing another would mint tokens nobody can verify.
    elsewhere = TokenIssuer(lambda: world.ring, world.issuer_url, AUDIENCE, TTL, world.subjects)
    with pytest.raises(ConfigError, match="keyring"):
        GatewayAuthorizationServer(issuer=elsewhere, issuer_url=world.issuer_url, **kwargs)
