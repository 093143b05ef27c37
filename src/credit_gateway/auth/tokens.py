"""RFC 9068 JWT access tokens: issued by the authorization server, verified by the interceptor.

Verification follows RFC 9068 section 4 in order: typ, alg allow-list, signature, iss, aud,
exp/nbf with bounded skew, then the RFC 8705 binding to the TLS peer's certificate. Revocation
is the caller's check against the database (never cached); a verified token's claims are cached
until the token expires, keyed by the token itself.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from credit_gateway.auth.binding import same_thumbprint
from credit_gateway.auth.keyring import KeyRing
from credit_gateway.auth.scopes import PrincipalKind, parse_scope
from credit_gateway.errors import Unauthenticated

ALGORITHMS = ["ES256"]  # explicit allow-list: never joserfc's default
TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
CACHE_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified access token speaks for."""

    kind: PrincipalKind
    id: str  # participant id, or the subject's code for a subject token
    client_id: str  # the participant whose certificate the token is bound to
    scopes: frozenset[str]
    jti: str
    expires_at: datetime
    cnf: str


class TokenIssuer:
    def __init__(self, keyring: KeyRing, issuer: str, audience: str, ttl: timedelta) -> None:
        self.keyring, self.issuer, self.audience, self.ttl = keyring, issuer, audience, ttl

    def issue(
        self,
        *,
        client_id: str,
        subject: str,
        kind: PrincipalKind,
        scopes: Iterable[str],
        cnf_x5t: str,
        now: datetime,
    ) -> tuple[str, dict[str, Any]]:
        key = self.keyring.current
        iat = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "client_id": client_id,
            "iat": iat,
            "nbf": iat,
            "exp": iat + int(self.ttl.total_seconds()),
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(sorted(scopes)),
            "cnf": {"x5t#S256": cnf_x5t},
            "principal": kind.value,
        }
        header = {"typ": TOKEN_TYPE, "alg": "ES256", "kid": key.kid}
        return jwt.encode(header, claims, self.keyring.current_jwk, algorithms=ALGORITHMS), claims


class TokenVerifier:
    def __init__(self, keyring: KeyRing, issuer: str, audience: str, skew: timedelta) -> None:
        self.keyring, self.issuer, self.audience, self.skew = keyring, issuer, audience, skew
        self._cache: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def verify(self, token: str, peer_x5t: str, now: datetime) -> Principal:
        principal = self._cache.get(token)
        if principal is None:
            principal = self._verify_uncached(token, now)
            with self._lock:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                self._cache[token] = principal
        if now >= principal.expires_at + self.skew:
            self._cache.pop(token, None)
            raise Unauthenticated("access token expired", reason="TOKEN_EXPIRED")
        # RFC 8705 section 3: the token is good only over a connection with the same certificate.
        if not same_thumbprint(principal.cnf, peer_x5t):
            raise Unauthenticated(
                "access token is bound to another certificate", reason="TOKEN_NOT_BOUND"
            )
        return principal

    def _verify_uncached(self, token: str, now: datetime) -> Principal:
        try:
            decoded = jwt.decode(token, self.keyring.verification_keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError, TypeError) as exc:
            raise Unauthenticated("access token is not valid", reason="TOKEN_INVALID") from exc
        header, claims = decoded.header, decoded.claims
        if header.get("typ", "").lower() not in (TOKEN_TYPE, "application/" + TOKEN_TYPE):
            raise Unauthenticated("not an access token", reason="TOKEN_INVALID")
        if claims.get("iss") != self.issuer:
            raise Unauthenticated("access token from another issuer", reason="TOKEN_INVALID")
        aud = claims.get("aud")
        if self.audience not in (aud if isinstance(aud, list) else [aud]):
            raise Unauthenticated("access token for another audience", reason="TOKEN_AUDIENCE")
        try:
            exp = datetime.fromtimestamp(int(claims["exp"]), now.tzinfo)
            nbf = datetime.fromtimestamp(
                int(claims["nbf"] if "nbf" in claims else claims["iat"]), now.tzinfo
            )
            principal = Principal(
                kind=PrincipalKind(claims["principal"]),
                id=str(claims["sub"]),
                client_id=str(claims["client_id"]),
                scopes=parse_scope(str(claims.get("scope", ""))),
                jti=str(claims["jti"]),
                expires_at=exp,
                cnf=str(claims["cnf"]["x5t#S256"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Unauthenticated(
                "access token lacks required claims", reason="TOKEN_INVALID"
            ) from exc
        if now >= exp + self.skew:
            raise Unauthenticated("access token expired", reason="TOKEN_EXPIRED")
        if nbf - self.skew > now:
            raise Unauthenticated("access token not yet valid", reason="TOKEN_INVALID")
        return principal

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)
