"""The gateway's OAuth 2.0 authorization server, on authlib's framework-agnostic core.

authlib does the protocol (grant selection, client authentication registry, RFC 7009 / RFC 7662
endpoints, RFC 6749 section 5.2 errors); this module supplies what authlib leaves to its
integrations and to us:

* the transport adapter: `HttpRequest` (from `auth.https`) -> `GatewayOAuth2Request`, and the
  (status, body, headers) authlib returns -> `HttpResponse`;
* client authentication by `private_key_jwt` (RFC 7523 section 2.2) and `tls_client_auth`
  (RFC 8705 section 2.1), both only over mutual TLS with a certificate registered for the
  client, because every token is bound to that certificate (RFC 8705 section 3);
* the client_credentials grant for participants and the JWT-bearer grant (RFC 7523 section 2.1)
  for credit subjects vouched for by a registered identity provider;
* RFC 9068 access tokens minted by `TokenIssuer`, through authlib's token-generator hook.

Every JWT we verify here goes through `auth.jwt.verify_jwt` (explicit ["ES256"] allow-list, the
key by its kid, typ, iss, aud, times with skew): authlib calls joserfc without an allow-list, so
the steps that decode are ours. The server follows key rotation through one callable, the
gateway's keyring accessor, which its TokenIssuer reads too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion, JWTBearerGrant
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from credit_gateway.adapters.http.server import (
    FORM_CONTENT_TYPE,
    HttpRequest,
    HttpResponse,
    json_error,
    media_type,
)
from credit_gateway.auth.binding import same_thumbprint, x5t_s256
from credit_gateway.auth.jwt import ALGORITHMS, NO_TYP, Expect, Problem, verify_jwt
from credit_gateway.auth.keyring import KeyRing
from credit_gateway.auth.ports import Client, TrustStore
from credit_gateway.auth.scopes import SCOPES_BY_KIND, SUBJECT_SCOPES, PrincipalKind, parse_scope
from credit_gateway.auth.tokens import TokenIssuer
from credit_gateway.domain.identifiers import IdentifierError, SubjectKind, parse_subject_code
from credit_gateway.domain.participants import ParticipantKind
from credit_gateway.domain.timestamps import civil_date
from credit_gateway.errors import ConfigError, PermissionDenied

__all__ = [
    "AUTH_METHODS",
    "JWT_BEARER_GRANT_TYPE",
    "GatewayAuthorizationServer",
    "GatewayOAuth2Request",
    "HttpRequest",
    "HttpResponse",
    "IssuedToken",
    "OAuthClient",
]

log = logging.getLogger(__name__)

PRIVATE_KEY_JWT = "private_key_jwt"
TLS_CLIENT_AUTH = "tls_client_auth"
AUTH_METHODS = [PRIVATE_KEY_JWT, TLS_CLIENT_AUTH]
CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = JWTBearerClientAssertion.CLIENT_ASSERTION_TYPE

LEEWAY = timedelta(seconds=60)  # clock skew allowed on assertions' exp/nbf/iat
MAX_GRANT_ASSERTION_LIFETIME = timedelta(minutes=10)
# Bounds how long a client assertion's jti must be remembered; authlib's client signs for 1 h.
MAX_CLIENT_ASSERTION_LIFETIME = timedelta(hours=1)
MAX_FORM_FIELDS = 32
# RFC 7523 assertions are usually untyped; an explicit type of another kind (our at+jwt, a
# consent+jwt) is refused (RFC 8725 section 3.11).
ASSERTION_TYPES = frozenset({NO_TYP, "jwt"})

ALL_SCOPES = frozenset(SUBJECT_SCOPES.union(*SCOPES_BY_KIND.values()))

TOKEN_PATH = "/token"  # noqa: S105 (a path, not a secret)
REVOKE_PATH = "/revoke"
INTROSPECT_PATH = "/introspect"
JWKS_PATH = "/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
_ROUTES = {
    TOKEN_PATH: "POST",
    REVOKE_PATH: "POST",
    INTROSPECT_PATH: "POST",
    JWKS_PATH: "GET",
    METADATA_PATH: "GET",
}
_JSON_HEADERS = (("Content-Type", "application/json"),)
_PUBLIC_CACHE = ("Cache-Control", "public, max-age=300")


def _safe(text: str) -> str:
    """error_description may only hold %x20-21 / %x23-5B / %x5D-7E (RFC 6749 section 5.2)."""
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class OAuthClient(ClientMixin):  # type: ignore[misc]  # authlib is untyped
    """A registered participant as authlib's client model.

    `x5t` is set once the client has authenticated over a connection whose certificate is
    registered for it: it is the thumbprint the issued token is bound to.
    """

    record: Client
    x5t: str | None = None

    @property
    def client_id(self) -> str:
        return self.record.client_id

    @property
    def kind(self) -> ParticipantKind:
        return self.record.participant.kind

    def get_client_id(self) -> str:
        return self.record.client_id

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # no shared secrets here

    def check_grant_type(self, grant_type: str) -> bool:
        # Identity providers only vouch for subjects; every other participant acts for itself.
        if self.kind is ParticipantKind.IDENTITY_PROVIDER:
            return grant_type == JWT_BEARER_GRANT_TYPE
        return grant_type == CLIENT_CREDENTIALS


class IssuedToken(TokenMixin):  # type: ignore[misc]  # authlib is untyped
    """An access token we issued and could verify, as authlib's token model (RFC 7009/7662)."""

    def __init__(self, claims: dict[str, Any], server: GatewayAuthorizationServer) -> None:
        self.claims = claims
        self.jti = str(claims["jti"])
        self.client_id = str(claims["client_id"])
        self.expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        self._server = server

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))

    def get_expires_in(self) -> int:
        return int(self.claims["exp"]) - int(self.claims["iat"])

    def is_expired(self) -> bool:
        return self._server.clock() >= self.expires_at

    def is_revoked(self) -> bool:
        return self._server.store.is_revoked(self.jti)


# --------------------------------------------------------------------------- request adapter


class _FormPayload(OAuth2Payload):  # type: ignore[misc]  # authlib is untyped
    def __init__(self, form: dict[str, str]) -> None:
        self._form = form

    @property
    def data(self) -> dict[str, str]:
        return self._form

    @property
    def datalist(self) -> dict[str, list[str]]:
        return {name: [value] for name, value in self._form.items()}


class GatewayOAuth2Request(OAuth2Request):  # type: ignore[misc]  # authlib is untyped
    """authlib's request built from ours, carrying the TLS client certificate's thumbprint."""

    def __init__(self, request: HttpRequest, uri: str, form: dict[str, str]) -> None:
        # authlib refuses a non-https uri here (InsecureTransportError).
        super().__init__(method=request.method, uri=uri, headers=dict(request.headers))
        self.payload = _FormPayload(form)
        self._form = form
        der = request.client_cert_der
        self.client_x5t: str | None = x5t_s256(der) if der else None

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}  # parameters travel in the body only (RFC 6749 section 3.2)


def parse_form(request: HttpRequest) -> dict[str, str]:
    """The form body of a POST, as one value per name; raises InvalidRequestError."""
    if request.method != "POST":
        return {}
    if media_type(request.header("content-type")) != FORM_CONTENT_TYPE:
        raise InvalidRequestError(description=f"Content-Type must be {FORM_CONTENT_TYPE}")
    try:
        pairs = parse_qsl(
            request.body.decode("utf-8"),
            # RFC 6749 section 3.1: a parameter sent without a value is treated as omitted.
            keep_blank_values=False,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError(description="malformed form body") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        # RFC 6749 section 3.2: parameters MUST NOT be included more than once.
        if name in form:
            raise InvalidRequestError(description="a parameter is repeated")
        form[name] = value
    return form


# --------------------------------------------------------------------------- assertions


def _client_keys(client: OAuthClient, error: type[OAuth2Error]) -> KeySet:
    try:
        return KeySet.import_key_set(client.record.jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        log.warning("registered JWKS of %s is unusable: %s", client.client_id, exc)
        raise error(description="no usable registered key") from exc


def _unverified_claims(assertion: str, error: type[OAuth2Error]) -> dict[str, Any]:
    """The claims before any check, only to find whose keys verify them."""
    try:
        claims = json.loads(jws.extract_compact(assertion.encode()).payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise error(description="the assertion is not a compact JWS") from exc
    if not isinstance(claims, dict):
        raise error(description="the assertion is not a compact JWS")
    return claims


def _verify_assertion(
    assertion: str,
    client: OAuthClient,
    *,
    now: datetime,
    audiences: list[str],
    max_lifetime: timedelta,
    error: type[OAuth2Error],
) -> tuple[dict[str, Any], datetime]:
    """RFC 7523 section 3 at our clock: signed by a key registered for `client`, which is its
    iss; sub, aud, exp and jti present; exp, nbf, iat with LEEWAY; a bounded lifetime.

    Returns the claims and until when the jti must be remembered to refuse a replay.
    """

    def fail(problem: Problem, detail: str) -> OAuth2Error:
        log.debug("assertion refused (%s): %s", problem.value, detail)
        return error(description=_safe(detail))

    expect = Expect(
        client.client_id,
        ASSERTION_TYPES,
        frozenset(audiences),
        frozenset({"sub", "exp", "jti"}),
        LEEWAY,
    )
    claims = verify_jwt(assertion, _client_keys(client, error), expect, now, fail).claims
    # Compared as numbers first: a huge (signed) exp must not reach datetime and overflow.
    if claims["exp"] > (now + max_lifetime + LEEWAY).timestamp():
        raise error(description="assertion lifetime is too long")
    return claims, datetime.fromtimestamp(claims["exp"], UTC) + LEEWAY


class _PrivateKeyJWT:
    """`private_key_jwt` (RFC 7523 section 2.2, RFC 7521 section 4.2) against Client.jwks."""

    def __init__(self, server: GatewayAuthorizationServer) -> None:
        self._server = server

    def __call__(
        self, query_client: Callable[[str], OAuthClient | None], request: GatewayOAuth2Request
    ) -> OAuthClient | None:
        form = request.form
        assertion = form.get("client_assertion")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not assertion:
            return None  # another method, then
        # RFC 7523 section 3 items 1 and 2: iss and sub are both the client_id. The client is
        # found by the unverified sub; its keys then verify the rest, iss == sub included.
        client_id = _unverified_claims(assertion, InvalidClientError).get("sub")
        if not isinstance(client_id, str):
            raise InvalidClientError(description="Missing claim: 'sub'")
        client = query_client(client_id)
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        server = self._server
        claims, remember_until = _verify_assertion(
            assertion,
            client,
            now=server.clock(),
            audiences=[server.token_endpoint, server.issuer_url],
            max_lifetime=MAX_CLIENT_ASSERTION_LIFETIME,
            error=InvalidClientError,
        )
        # RFC 7521 section 4.2: a client_id sent alongside must name the assertion's subject.
        form_client_id = form.get("client_id")
        if form_client_id is not None and form_client_id != client_id:
            raise InvalidClientError(description="client_id does not match the client assertion")
        if not server.store.consume_assertion(client_id, claims["jti"], remember_until):
            raise InvalidClientError(description="client assertion was used before")
        return server.bind_client(request, client)


# --------------------------------------------------------------------------- grants


def granted_scopes(requested: str | None, allowed: frozenset[str]) -> frozenset[str]:
    """RFC 6749 section 3.3: no scope asked means the registered default, i.e. all of them."""
    asked = parse_scope(requested or "")
    if asked and not asked <= allowed:
        raise InvalidScopeError(description="a requested scope is not granted to this client")
    granted = asked or allowed
    if not granted:
        raise InvalidScopeError(description="no scope is registered for this client")
    return granted


class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    """RFC 6749 section 4.4, for participants acting for themselves."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        super().validate_requested_scope()
        granted_scopes(self.request.payload.scope, self.request.client.record.participant.scopes)


class _SubjectAssertionGrant(JWTBearerGrant):  # type: ignore[misc]
    """RFC 7523 section 2.1: an identity provider's assertion about a credit subject."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    server: GatewayAuthorizationServer

    def validate_token_request(self) -> None:
        # RFC 7523 section 3.1 makes client authentication optional; we require it (over mTLS),
        # since the subject's token is bound to the presenting client's certificate.
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                description=f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'"
            )
        self.request.client = client
        # Before the assertion is verified, so a bad scope does not spend its jti.
        self.validate_requested_scope()
        assertion = self.request.form.get("assertion")
        if not assertion:
            raise InvalidRequestError(description="Missing 'assertion' in request")
        claims = self._verified_claims(assertion, client)
        subject = self.authenticate_user(claims["sub"])
        if subject is None:
            raise InvalidGrantError(description="the assertion subject is not a valid subject code")
        self.request.user = subject

    def validate_requested_scope(self) -> None:
        super().validate_requested_scope()
        granted_scopes(self.request.payload.scope, SUBJECT_SCOPES)

    def _verified_claims(self, assertion: str, provider: OAuthClient) -> dict[str, Any]:
        issuer = _unverified_claims(assertion, InvalidGrantError).get("iss")
        if not isinstance(issuer, str):
            raise InvalidGrantError(description="Missing claim: 'iss'")
        # Only the issuing provider's own connection redeems its assertions: the subject's
        # token is bound to the presenter's certificate, so provider B redeeming provider A's
        # assertion would hold a token for a subject that A, not B, vouched for.
        if issuer != provider.client_id:
            raise InvalidGrantError(
                description="the assertion was issued by another identity provider; "
                "only its issuer may redeem it"
            )
        claims, remember_until = _verify_assertion(
            assertion,
            provider,
            now=self.server.clock(),
            audiences=[self.server.token_endpoint],
            max_lifetime=MAX_GRANT_ASSERTION_LIFETIME,
            error=InvalidGrantError,
        )
        # RFC 7523 section 3 item 7: a jti seen before is a replay.
        if not self.server.store.consume_assertion(issuer, claims["jti"], remember_until):
            raise InvalidGrantError(description="assertion was used before")
        return claims

    def authenticate_user(self, subject: object) -> str | None:
        """The normalised subject code (never logged: it can be a resident id number). A
        real-name portal asserts a person: the code is read as a resident id number only, so
        one that is also a USCC is that person, never the organisation."""
        if not isinstance(subject, str):
            return None
        try:
            _kind, code = parse_subject_code(
                subject, today=civil_date(self.server.clock()), kind=SubjectKind.NATURAL_PERSON
            )
        except IdentifierError:
            return None
        return code.value


class _AccessTokenGenerator:
    """authlib token-generator hook: RFC 9068 JWTs from TokenIssuer, bound per RFC 8705."""

    def __init__(self, server: GatewayAuthorizationServer, kind: PrincipalKind) -> None:
        self._server, self._kind = server, kind

    def __call__(
        self,
        grant_type: str,
        client: OAuthClient,
        user: str | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        if client.x5t is None:  # bind_client always sets it; never mint an unbound token
            raise InvalidClientError(description="no TLS client certificate")
        if self._kind is PrincipalKind.SUBJECT:
            if user is None:
                raise InvalidGrantError(description="no subject")
            subject, allowed = user, SUBJECT_SCOPES
        else:
            subject, allowed = client.client_id, client.record.participant.scopes
        access_token, claims = self._server.tokens.issue(
            client_id=client.client_id,
            subject=subject,
            kind=self._kind,
            scopes=granted_scopes(scope, allowed),
            cnf_x5t=client.x5t,
            now=self._server.clock(),
        )
        # No refresh token: a participant re-authenticates; a subject gets a new assertion.
        return {
            "token_type": "Bearer",  # RFC 8705 keeps the Bearer type for bound tokens
            "access_token": access_token,
            "expires_in": int(claims["exp"]) - int(claims["iat"]),
            "scope": claims["scope"],
        }


# --------------------------------------------------------------------------- endpoints


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. authlib refuses (invalid_grant) a token issued to another client."""

    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: GatewayAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        # RFC 7009 section 2.2: a token we cannot verify gets a 200 all the same.
        return self.server.load_access_token(token_string)

    def revoke_token(self, token: IssuedToken, request: GatewayOAuth2Request) -> None:
        self.server.store.revoke_token(token.jti, token.expires_at)
        log.info("client %s revoked token %s", token.client_id, token.jti)


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662, for authenticated clients about their own tokens."""

    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: GatewayAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return self.server.load_access_token(token_string)

    def check_permission(
        self, token: IssuedToken, client: OAuthClient, request: GatewayOAuth2Request
    ) -> bool:
        # Anything else gets {"active": false} (RFC 7662 section 2.2).
        return token.check_client(client)

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        c = token.claims
        names = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "cnf")
        payload = {name: c[name] for name in names if name in c}
        # RFC 8705 section 3.2: cnf tells the resource server which certificate to expect.
        return {"active": True, "token_type": "Bearer", **payload}


# --------------------------------------------------------------------------- server


class GatewayAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """The OAuth 2.0 authorization server; `handle` is its whole HTTP surface.

    `keyring` is read on every request, so a key rotation takes effect without a restart:
    tokens are signed by its current key and verified (and published) with current + previous.
    """

    def __init__(
        self,
        *,
        store: TrustStore,
        issuer: TokenIssuer,
        keyring: Callable[[], KeyRing],
        issuer_url: str,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(scopes_supported=sorted(ALL_SCOPES))
        if not issuer_url.startswith("https://"):
            raise ConfigError("the OAuth issuer URL must use https (RFC 8414 section 2)")
        if issuer.issuer != issuer_url:
            raise ConfigError("the token issuer's iss must be the authorization server's issuer")
        if issuer.keys != keyring:
            raise ConfigError("the token issuer must sign with the keyring the server publishes")
        self.store = store
        self.clock = clock
        self.issuer_url = issuer_url
        self.tokens = issuer
        self._keyring = keyring
        base = issuer_url.rstrip("/")
        self.token_endpoint = base + TOKEN_PATH
        self.revocation_endpoint = base + REVOKE_PATH
        self.introspection_endpoint = base + INTROSPECT_PATH
        self.jwks_uri = base + JWKS_PATH
        self._base = base
        self._client_challenge = client_challenge(issuer_url)

        self.register_client_auth_method(PRIVATE_KEY_JWT, _PrivateKeyJWT(self))
        self.register_client_auth_method(TLS_CLIENT_AUTH, self._authenticate_tls_client)
        self.register_grant(_ClientCredentialsGrant)
        self.register_grant(_SubjectAssertionGrant)
        self.register_token_generator(
            CLIENT_CREDENTIALS, _AccessTokenGenerator(self, PrincipalKind.PARTICIPANT)
        )
        self.register_token_generator(
            JWT_BEARER_GRANT_TYPE, _AccessTokenGenerator(self, PrincipalKind.SUBJECT)
        )
        self.register_endpoint(_Revocation(self))
        self.register_endpoint(_Introspection(self))

    # ---- the HTTP surface

    def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path.split("?", 1)[0]
        method = _ROUTES.get(path)
        if method is None:
            return json_error(404, "not_found", "no such endpoint")
        if request.method != method:
            error = json_error(405, "invalid_request", f"use {method}")
            return HttpResponse(405, (*error.headers, ("Allow", method)), error.body)
        if path == METADATA_PATH:
            return _json(200, self.metadata(), _PUBLIC_CACHE)
        if path == JWKS_PATH:
            return _json(200, self._keyring().public_jwks(), _PUBLIC_CACHE)
        try:
            oauth_request = self.create_oauth2_request(request)
        except OAuth2Error as error:
            return self._response(self.handle_error_response(None, error))
        if path == TOKEN_PATH:
            return self._response(self.create_token_response(oauth_request))
        name = RevocationEndpoint.ENDPOINT_NAME if path == REVOKE_PATH else "introspection"
        return self._response(self.create_endpoint_response(name, oauth_request))

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 section 2, with RFC 8705 section 3.3's bound-token flag."""
        algs = list(ALGORITHMS)
        return {
            "issuer": self.issuer_url,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": self.jwks_uri,
            "revocation_endpoint": self.revocation_endpoint,
            "introspection_endpoint": self.introspection_endpoint,
            "grant_types_supported": [CLIENT_CREDENTIALS, JWT_BEARER_GRANT_TYPE],
            # REQUIRED by RFC 8414, but there is no authorization endpoint to have any.
            "response_types_supported": [],
            "scopes_supported": sorted(ALL_SCOPES),
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_signing_alg_values_supported": algs,
            "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            "tls_client_certificate_bound_access_tokens": True,
        }

    # ---- authlib's framework hooks

    def query_client(self, client_id: str) -> OAuthClient | None:
        record = self.store.client(client_id)
        return None if record is None else OAuthClient(record)

    def save_token(self, token: dict[str, Any], request: GatewayOAuth2Request) -> None:
        # Self-contained RFC 9068 tokens need no row; revocation records the jti instead.
        log.info("issued %s token to %s", request.payload.grant_type, request.client.client_id)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass  # no signal bus here; audit is the caller's job

    def create_oauth2_request(
        self, request: HttpRequest | GatewayOAuth2Request
    ) -> GatewayOAuth2Request:
        if isinstance(request, GatewayOAuth2Request):
            return request  # authlib calls this again on the already-adapted request
        path = request.path.split("?", 1)[0]
        return GatewayOAuth2Request(request, self._base + path, parse_form(request))

    def handle_error_response(self, request: Any, error: OAuth2Error) -> HttpResponse:
        """RFC 6749 section 5.2 errors. A failed client authentication is a 401 with a challenge
        on all three endpoints: RFC 6749 section 5.2 allows it on /token (RFC 7009 section 2.2.1
        refers /revoke to it) and RFC 7662 section 2.3 asks it of /introspect."""
        status, body, headers = error(self.get_error_uri(request, error))
        if isinstance(error, InvalidClientError):
            status = 401
            headers = [(k, v) for k, v in headers if k.lower() != "www-authenticate"]
            headers.append(("WWW-Authenticate", self._client_challenge))
        return self.handle_response(status, body, headers)

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> HttpResponse:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        raw = data.encode() if isinstance(data, str) else data
        return HttpResponse(status, tuple((str(k), str(v)) for k, v in headers), raw)

    # ---- client authentication

    def _authenticate_tls_client(
        self, query_client: Callable[[str], OAuthClient | None], request: GatewayOAuth2Request
    ) -> OAuthClient | None:
        """RFC 8705 section 2.1 (PKI method): client_id in the body, certificate from TLS.

        The CA chain was checked by the TLS layer; here the certificate must be one registered
        for that client (compared by x5t#S256, RFC 8705 section 2.1.2's registered-cert style).
        """
        form = request.form
        client_id = form.get("client_id")
        # RFC 6749 section 2.3: one authentication method per request.
        if not client_id or "client_assertion" in form or "client_secret" in form:
            return None
        client = query_client(client_id)
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        return self.bind_client(request, client)

    def bind_client(self, request: GatewayOAuth2Request, client: OAuthClient) -> OAuthClient:
        """The common end of both methods: registered certificate, and a participant that may act.

        RFC 8705 section 3: the token is bound to this connection's certificate, so it must be
        one registered for the client whichever method authenticated it; otherwise a stolen
        assertion could be spent over someone else's connection.
        """
        x5t = request.client_x5t
        registered = client.record.certificate_thumbprints
        if x5t is None or not any(same_thumbprint(x5t, known) for known in registered):
            raise InvalidClientError(
                description="the TLS client certificate is not registered for this client"
            )
        try:
            client.record.participant.ensure_may_act(self.clock())
        except PermissionDenied as exc:
            raise UnauthorizedClientError(description=_safe(exc.message)) from exc
        return OAuthClient(client.record, x5t)

    # ---- tokens

    def load_access_token(self, token: str) -> IssuedToken | None:
        """A token we issued (RFC 9068 section 4 but for the times), expired or not; None for
        anything else."""
        claims = self.tokens.read(token)
        if claims is None:
            return None
        try:
            return IssuedToken(claims, self)
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            return None

    def _response(self, result: Any) -> HttpResponse:
        if not isinstance(result, HttpResponse):
            raise TypeError(f"authlib returned {type(result).__name__}, not an HttpResponse")
        return result


def client_challenge(issuer_url: str) -> str:
    """The WWW-Authenticate value of a 401 for a client that failed to authenticate.

    RFC 9110 section 11.6.1 wants at least one challenge in it, but no HTTP authentication
    scheme carries either method we accept: the assertion travels in the form and the
    certificate in TLS. So there is one challenge per method, named as the IANA registry of
    token endpoint authentication methods (and our metadata) names it; `Basic`, authlib's
    default, or `Bearer` would invite credentials we refuse. The realm is the issuer, the one
    protection space of /token, /revoke and /introspect.
    """
    return ", ".join(f'{method} realm="{issuer_url}"' for method in AUTH_METHODS)


def _json(status: int, body: dict[str, Any], *headers: tuple[str, str]) -> HttpResponse:
    return HttpResponse(status, (*_JSON_HEADERS, *headers), json.dumps(body).encode())
