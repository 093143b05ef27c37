"""Consent tokens: a compact JWS (ES256, typ consent+jwt) signed by the gateway's current key.

The token names the consent, the subject (by its opaque gateway id, never its identity number),
the grantee, the scope and the expiry. It is a pointer with a signature, not the authority: the
release transaction reads the consent record itself, so a revoked consent fails at once even
while its token has not expired. Verification failures collapse into one reason for the caller.

The expiry is the consent's `valid_until` to the microsecond, in `valid_until_us` (integer
microseconds since the epoch): `exp` is a whole second, rounded *up* so that no reader of `exp`
alone holds the token valid longer than the consent, and the gateway itself never refuses it
earlier than the consent ends (a rounded-down `exp` refused queries up to a second before
GetConsent stopped saying ACTIVE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from joserfc import jwt

from credit_gateway.auth.jwt import ALGORITHMS, Expect, Problem, VerifiedCache, verify_jwt
from credit_gateway.auth.keyring import KeyRing
from credit_gateway.domain.consent import Consent
from credit_gateway.errors import PermissionDenied

TOKEN_TYPE = "consent+jwt"  # noqa: S105 - a media type, not a secret
CACHE_LIMIT = 50_000


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
        "exp": _whole_seconds_up(terms.valid_until),
        "valid_until_us": _microseconds(terms.valid_until),
        "iat": int(consent.granted_at.timestamp()),
    }
    header = {"typ": TOKEN_TYPE, "alg": ALGORITHMS[0], "kid": keyring.current.kid}
    return jwt.encode(header, claims, keyring.current_jwk, algorithms=list(ALGORITHMS))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _microseconds(at: datetime) -> int:
    """Exactly, in integers: a float timestamp of today has too few digits for microseconds."""
    return (at - _EPOCH) // timedelta(microseconds=1)


def _whole_seconds_up(at: datetime) -> int:
    return -(-_microseconds(at) // 1_000_000)


def _expiry(claims: dict[str, object]) -> datetime:
    """The exact expiry: `valid_until_us`, which must round up to `exp`; a token without it
    (issued before it was added) expires at `exp`."""
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int):
        raise TypeError("exp is not an integer")
    if "valid_until_us" not in claims:
        return _EPOCH + timedelta(seconds=exp)
    exact = claims["valid_until_us"]
    if isinstance(exact, bool) or not isinstance(exact, int):
        raise TypeError("valid_until_us is not an integer")
    if -(-exact // 1_000_000) != exp:
        raise ValueError("valid_until_us and exp disagree")
    return _EPOCH + timedelta(microseconds=exact)


def _invalid(_problem: Problem, _detail: str) -> ConsentTokenError:
    return ConsentTokenError("CONSENT_TOKEN_INVALID")  # opaque: the one reason for any failure


class ConsentTokenVerifier:
    """Checks signature, type and issuer once, and the expiry on every use (so an expired token
    still names its consent); caches what verified, keyed by the token, while its key is live.
    A consent token has no audience: the gateway is the only party that reads it."""

    def __init__(self, keys: Callable[[], KeyRing], issuer: str) -> None:
        self.keys = keys
        self._expect = Expect(
            issuer,
            frozenset({TOKEN_TYPE}),
            None,
            frozenset({"exp", "consent_id", "sub", "grantee"}),
        )
        self._cache: VerifiedCache[ConsentClaims] = VerifiedCache(CACHE_LIMIT)

    def verify(self, token: str, now: datetime) -> ConsentClaims:
        ring = self.keys()
        claims = self._cache.get(token, ring.knows, lambda: self._verify_signature(token, ring))
        if now >= claims.expires_at:
            raise ConsentTokenError("CONSENT_EXPIRED", claims.consent_id)
        return claims

    def _verify_signature(self, token: str, ring: KeyRing) -> tuple[ConsentClaims, str | None]:
        verified = verify_jwt(token, ring.verification_keys, self._expect, None, _invalid)
        claims = verified.claims
        try:
            consent = ConsentClaims(
                consent_id=str(claims["consent_id"]),
                subject_id=str(claims["sub"]),
                grantee=str(claims["grantee"]),
                expires_at=_expiry(claims),
            )
        except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
            raise _invalid(Problem.CLAIMS, "") from exc
        return consent, verified.kid
