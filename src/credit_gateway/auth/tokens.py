"""RFC 9068 JWT access tokens: issued by the authorization server, verified by the interceptor.

Verification is RFC 9068 section 4 through `auth.jwt.verify_jwt` (typ, alg allow-list,
signature, iss, aud, exp/nbf with bounded skew), then the RFC 8705 binding to the TLS peer's
certificate. Revocation is the caller's check against the database (never cached); a verified
token's principal is cached until the token expires, keyed by the token itself, for as long as
the key that signed it is live.

Both sides read the gateway's keyring through one callable on every use, so a key rotation
takes effect without rebuilding them. A subject token's `sub` is a pairwise pseudonym
(`crypto.pseudonyms`), never the subject's code: the verifier turns it back into the code, so
`Principal.id` is the code inside the gateway and nowhere outside it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt

from credit_gateway.auth.binding import same_thumbprint
from credit_gateway.auth.jwt import ALGORITHMS, Expect, Problem, VerifiedCache, verify_jwt
from credit_gateway.auth.keyring import KeyRing
from credit_gateway.auth.scopes import PrincipalKind, parse_scope
from credit_gateway.crypto.pseudonyms import SubjectPseudonyms
from credit_gateway.errors import Unauthenticated

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
CACHE_LIMIT = 50_000
# RFC 9068 section 2.2: the claims every access token has (iss and aud are checked as such).
_REQUIRED = frozenset({"exp", "iat", "jti", "sub", "client_id"})
_REFUSALS: dict[Problem, tuple[str, str]] = {
    Problem.INVALID: ("access token is not valid", "TOKEN_INVALID"),
    Problem.TYPE: ("not an access token", "TOKEN_INVALID"),
    Problem.ISSUER: ("access token from another issuer", "TOKEN_INVALID"),
    Problem.AUDIENCE: ("access token for another audience", "TOKEN_AUDIENCE"),
    Problem.CLAIMS: ("access token lacks required claims", "TOKEN_INVALID"),
    Problem.EXPIRED: ("access token expired", "TOKEN_EXPIRED"),
    Problem.NOT_YET_VALID: ("access token not yet valid", "TOKEN_INVALID"),
}

Keys = Callable[[], KeyRing]


def _refusal(problem: Problem, _detail: str) -> Unauthenticated:
    message, reason = _REFUSALS[problem]
    return Unauthenticated(message, reason=reason)


def _expect(issuer: str, audience: str, skew: timedelta) -> Expect:
    return Expect(issuer, frozenset({TOKEN_TYPE}), frozenset({audience}), _REQUIRED, skew)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified access token speaks for."""

    kind: PrincipalKind
    id: str  # participant id, or the subject's code for a subject token (never in the token)
    client_id: str  # the participant whose certificate the token is bound to
    scopes: frozenset[str]
    jti: str
    expires_at: datetime
    cnf: str


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    keys: Keys
    issuer: str
    audience: str
    ttl: timedelta
    subjects: SubjectPseudonyms

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
        """`subject` is the participant id, or for a subject token the subject's code, which
        the token names only by its pseudonym for `client_id`."""
        ring = self.keys()
        iat = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": (
                self.subjects.pseudonym(subject, client_id)
                if kind is PrincipalKind.SUBJECT
                else subject
            ),
            "client_id": client_id,
            "iat": iat,
            "nbf": iat,
            "exp": iat + int(self.ttl.total_seconds()),
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(sorted(scopes)),
            "cnf": {"x5t#S256": cnf_x5t},
            "principal": kind.value,
        }
        header = {"typ": TOKEN_TYPE, "alg": ALGORITHMS[0], "kid": ring.current.kid}
        token = jwt.encode(header, claims, ring.current_jwk, algorithms=list(ALGORITHMS))
        return token, claims

    def read(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this issuer issued (signature by a live key, typ, iss, aud),
        expired or not: for revocation and introspection. None for anything else."""
        expect = _expect(self.issuer, self.audience, timedelta(0))
        try:
            return verify_jwt(token, self.keys().verification_keys, expect, None, _refusal).claims
        except Unauthenticated:
            return None


class TokenVerifier:
    def __init__(
        self,
        keys: Keys,
        issuer: str,
        audience: str,
        skew: timedelta,
        subjects: SubjectPseudonyms,
    ) -> None:
        self.keys, self.skew, self.subjects = keys, skew, subjects
        self._expect = _expect(issuer, audience, skew)
        self._cache: VerifiedCache[Principal] = VerifiedCache(CACHE_LIMIT)

    def verify(self, token: str, peer_x5t: str, now: datetime) -> Principal:
        ring = self.keys()
        principal = self._cache.get(
            token, ring.knows, lambda: self._verify_uncached(token, ring, now)
        )
        if now >= principal.expires_at + self.skew:
            self._cache.discard(token)
            raise Unauthenticated("access token expired", reason="TOKEN_EXPIRED")
        # RFC 8705 section 3: the token is good only over a connection with the same certificate.
        if not same_thumbprint(principal.cnf, peer_x5t):
            raise Unauthenticated(
                "access token is bound to another certificate", reason="TOKEN_NOT_BOUND"
            )
        return principal

    def _verify_uncached(
        self, token: str, ring: KeyRing, now: datetime
    ) -> tuple[Principal, str | None]:
        verified = verify_jwt(token, ring.verification_keys, self._expect, now, _refusal)
        claims = verified.claims
        try:
            kind = PrincipalKind(claims["principal"])
            client_id = str(claims["client_id"])
            principal = Principal(
                kind=kind,
                id=self._principal_id(kind, str(claims["sub"]), client_id),
                client_id=client_id,
                scopes=parse_scope(str(claims.get("scope", ""))),
                jti=str(claims["jti"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), now.tzinfo),
                cnf=str(claims["cnf"]["x5t#S256"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
            raise _refusal(Problem.CLAIMS, "") from exc
        return principal, verified.kid

    def _principal_id(self, kind: PrincipalKind, sub: str, client_id: str) -> str:
        if kind is not PrincipalKind.SUBJECT:
            return sub
        code = self.subjects.code(sub, client_id)
        if code is None:
            raise Unauthenticated("access token names no subject", reason="TOKEN_INVALID")
        return code

    def forget(self, token: str) -> None:
        self._cache.discard(token)
