"""The one way the gateway verifies a JWT: access tokens (RFC 9068), consent tokens, and the
RFC 7523 assertions (client authentication and the JWT-bearer grant).

The steps, in order (RFC 8725 section 3, RFC 9068 section 4):
  1. the JWS, with an explicit algorithm allow-list (never the library's default, so neither
     `none` nor an HMAC keyed with a public key) and the key its `kid` names in the key set;
  2. `typ` (explicit typing, RFC 8725 section 3.11: one kind of token is never taken for
     another), compared as RFC 7515 section 4.1.9 says: case-insensitive, `application/` optional;
  3. `iss`, then `aud` where the kind of token has one;
  4. the claims the caller requires are present;
  5. exp, nbf and iat as numbers against the caller's `now`, with its skew (numbers, so a huge
     signed exp never reaches datetime and overflows).
A failure is raised as whatever the caller's `fail` makes of it, so each caller keeps its own
error class and reasons; the `Problem` says which step failed, the detail is safe to show.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from credit_gateway.caches import BoundedCache

ALGORITHMS = ("ES256",)  # what the gateway signs and accepts; nothing else, ever


class Problem(enum.Enum):
    # Not a compact JWS, an algorithm not allowed, no key by its kid, or a bad signature.
    INVALID = "invalid"
    TYPE = "type"
    ISSUER = "issuer"
    AUDIENCE = "audience"
    CLAIMS = "claims"  # a required claim missing, or a time claim that is not a number
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"  # nbf, or iat, later than now plus the skew


Fail = Callable[[Problem, str], Exception]
T = TypeVar("T")
NO_TYP = None  # in `Expect.types`: a token without a `typ` header is accepted


@dataclass(frozen=True, slots=True)
class Expect:
    """What a kind of token must be. `types` are lower case without `application/`."""

    issuer: str
    types: frozenset[str | None]
    audiences: frozenset[str] | None  # None: this kind of token carries no audience
    required: frozenset[str] = frozenset({"exp"})
    skew: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class VerifiedJwt:
    kid: str | None  # the key that verified it, so a cache can drop it once that key retires
    claims: dict[str, Any]


def verify_jwt(
    token: str, keys: KeySet, expect: Expect, now: datetime | None, fail: Fail
) -> VerifiedJwt:
    """The verified claims, or `fail(problem, detail)` raised. `now` None skips step 5, for a
    caller that checks the times itself on every use of what it caches."""
    try:
        decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise fail(Problem.INVALID, "the JWT's form or signature is not valid") from exc
    header, claims = decoded.header, decoded.claims
    typ = header.get("typ")
    if typ is not None and not isinstance(typ, str):
        raise fail(Problem.TYPE, "Invalid header: 'typ'")
    if (typ if typ is None else typ.lower().removeprefix("application/")) not in expect.types:
        raise fail(Problem.TYPE, "Invalid header: 'typ'")
    if claims.get("iss") != expect.issuer:
        raise fail(Problem.ISSUER, "Invalid claim: 'iss'")
    if expect.audiences is not None:
        aud = claims.get("aud")
        named = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a in expect.audiences for a in named):
            raise fail(Problem.AUDIENCE, "Invalid claim: 'aud'")
    missing = sorted(expect.required - claims.keys())
    if missing:
        raise fail(Problem.CLAIMS, f"Missing claim: '{missing[0]}'")
    if now is not None:
        _check_times(claims, now.timestamp(), expect.skew.total_seconds(), fail)
    kid = header.get("kid")
    return VerifiedJwt(kid if isinstance(kid, str) else None, claims)


def _check_times(claims: dict[str, Any], now: float, skew: float, fail: Fail) -> None:
    exp, nbf, iat = (_numeric_date(claims, name, fail) for name in ("exp", "nbf", "iat"))
    # RFC 7519 section 4.1.4: "the current date/time MUST be before" exp. Each claim stands
    # alone on its side of a comparison: an int too large for a float still compares exactly.
    if exp is not None and now - skew >= exp:
        raise fail(Problem.EXPIRED, "The token is expired")
    if nbf is not None and nbf > now + skew:
        raise fail(Problem.NOT_YET_VALID, "The token is not valid yet")
    if iat is not None and iat > now + skew:
        raise fail(Problem.NOT_YET_VALID, "The token is issued in the future")


def _numeric_date(claims: dict[str, Any], name: str, fail: Fail) -> int | float | None:
    if name not in claims:
        return None
    value = claims[name]
    # bool is an int in Python, not a NumericDate in JSON; NaN compares false with everything.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(Problem.CLAIMS, f"Invalid claim: '{name}'")
    if isinstance(value, float) and not math.isfinite(value):  # (an int may not fit a float)
        raise fail(Problem.CLAIMS, f"Invalid claim: '{name}'")
    return value


class VerifiedCache(Generic[T]):
    """What tokens verified to, keyed by the token, while the key that signed each is live: a
    token whose key has retired since is verified again (and refused), one without a kid every
    time. The times are the caller's to check on every use."""

    def __init__(self, limit: int) -> None:
        self._entries: BoundedCache[str, tuple[T, str | None]] = BoundedCache(limit)

    def get(
        self, token: str, live: Callable[[str], bool], verify: Callable[[], tuple[T, str | None]]
    ) -> T:
        """The cached value, or `verify()`'s (the value and the kid that verified it)."""
        entry = self._entries.get(token)
        if entry is None or entry[1] is None or not live(entry[1]):
            entry = verify()
            self._entries.put(token, entry)
        return entry[0]

    def discard(self, token: str) -> None:
        self._entries.discard(token)
