"""Consent tokens: a compact JWS (ES256, typ consent+jwt) signed by the gateway's current key.

The token names the consent, the subject (by its opaque gateway id, never its identity number),
the grantee, the scope and the expiry. It is a pointer with a signature, not the authority: the
release transaction reads the consent record itself, so a revoked consent fails at once even
while its token has not expired. Verification failures collapse into one reason for the caller.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from joserfc import jwt
from joserfc.errors import JoseError

from credit_gateway.auth.keyring import KeyRing
from credit_gateway.domain.consent import Consent
from credit_gateway.errors import PermissionDenied

TOKEN_TYPE = "consent+jwt"  # noqa: S105 - a media type, not a secret
ALGORITHMS = ["ES256"]


class ConsentTokenError(PermissionDenied):
    """The token is refused; `consent_id` is set when its signature verified (an expired token
    still names its consent, so the refusal is filed under it for the subject to see). The
    message is the reason: nothing more is told about why a token failed."""

    default_reason = "CONSENT_TOKEN_INVALID"

    def __init__(self, reason: str, consent_id: str | None = None) -> None:
        super().__init__(reason, reason=reason)
        self.consent_id = consent_id


@dataclass(frozen=True, slots=True)
class ConsentClaims:
    consent_id: str
    subject_id: str
    grantee: str
    expires_at: datetime


def issue(keyring: KeyRing, issuer: str, consent: Consent) -> str:
    terms = consent.terms
    claims = {
        "iss": issuer,
        "jti": consent.id,
        "consent_id": consent.id,
        "sub": consent.subject_id,
        "grantee": terms.grantee,
        "scope": {
            "purpose": terms.purpose_code,
            "items": sorted(terms.item_codes),
            "categories": sorted(c.value for c in terms.categories),
        },
        "nbf": int(terms.valid_from.timestamp()),
        "exp": int(terms.valid_until.timestamp()),
        "iat": int(consent.granted_at.timestamp()),
    }
    header = {"typ": TOKEN_TYPE, "alg": "ES256", "kid": keyring.current.kid}
    return jwt.encode(header, claims, keyring.current_jwk, algorithms=ALGORITHMS)


class ConsentTokenVerifier:
    """Checks signature, type, issuer and expiry; caches what verified, keyed by the token."""

    def __init__(self, keyring: KeyRing, issuer: str) -> None:
        self.keyring, self.issuer = keyring, issuer
        self._cache: dict[str, ConsentClaims] = {}
        self._lock = threading.Lock()

    def verify(self, token: str, now: datetime) -> ConsentClaims:
        claims = self._cache.get(token)
        if claims is None:
            claims = self._verify_signature(token)
            with self._lock:
                if len(self._cache) > 50_000:
                    self._cache.clear()
                self._cache[token] = claims
        if now >= claims.expires_at:
            raise ConsentTokenError("CONSENT_EXPIRED", claims.consent_id)
        return claims

    def _verify_signature(self, token: str) -> ConsentClaims:
        try:
            decoded = jwt.decode(token, self.keyring.verification_keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError, TypeError) as exc:
            raise ConsentTokenError("CONSENT_TOKEN_INVALID") from exc
        header, claims = decoded.header, decoded.claims
        if header.get("typ") != TOKEN_TYPE or claims.get("iss") != self.issuer:
            raise ConsentTokenError("CONSENT_TOKEN_INVALID")
        try:
            return ConsentClaims(
                consent_id=str(claims["consent_id"]),
                subject_id=str(claims["sub"]),
                grantee=str(claims["grantee"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConsentTokenError("CONSENT_TOKEN_INVALID") from exc
