"""auth.jwt.verify_jwt, the one JWT verification, step by step: each way a token can be wrong is
refused with its own Problem, as the caller's own error; and VerifiedCache, which keeps what
verified only while the signing key is live."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from support.jose import b64, forged

from credit_gateway.auth.jwt import NO_TYP, Expect, Problem, VerifiedCache, verify_jwt

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
T = int(NOW.timestamp())
SKEW = timedelta(seconds=30)
KEY = ECKey.generate_key("P-256", {"kid": "k1"})
OTHER = ECKey.generate_key("P-256", {"kid": "k2"})
KEYS = KeySet([KEY])
EXPECT = Expect(
    "https://gw",
    frozenset({"at+jwt"}),
    frozenset({"credit-gateway"}),
    frozenset({"exp", "jti"}),
    SKEW,
)


class Refused(Exception):
    def __init__(self, problem: Problem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "https://gw",
        "aud": "credit-gateway",
        "iat": T,
        "nbf": T,
        "exp": T + 300,
        "jti": "j-1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(key: ECKey = KEY, typ: str | None = "at+jwt", **changes: Any) -> str:
    header: dict[str, Any] = {"alg": "ES256", "kid": key.kid}
    if typ is not None:
        header["typ"] = typ
    return jwt.encode(header, claims(**changes), key, algorithms=["ES256"])


def problem(value: str, expect: Expect = EXPECT, now: datetime | None = NOW) -> Problem:
    with pytest.raises(Refused) as refused:
        verify_jwt(value, KEYS, expect, now, Refused)
    return refused.value.problem


def test_a_good_token_gives_its_claims_and_kid() -> None:
    verified = verify_jwt(token(), KEYS, EXPECT, NOW, Refused)
    assert verified.kid == "k1"
    assert verified.claims == claims()


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"])
def test_typ_is_compared_as_rfc_7515_says(typ: str) -> None:
    assert verify_jwt(token(typ=typ), KEYS, EXPECT, NOW, Refused).kid == "k1"


def test_the_signature_and_the_algorithm() -> None:
    pem = KEY.get_op_key("verify").public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_json = json.dumps(KEY.as_dict(private=False)).encode()
    header = {"alg": "HS256", "kid": "k1", "typ": "at+jwt"}
    genuine = token()
    head, _body, signature = genuine.split(".")
    refused = {
        "alg none": forged({"alg": "none", "typ": "at+jwt"}, claims(), None),
        "HS256 keyed with the public key": forged(header, claims(), pem),
        "HS256 keyed with the public JWK": forged(header, claims(), jwk_json),
        "a key not in the set": token(OTHER),
        "a key in the set, named by another kid": token(
            ECKey.import_key(OTHER.as_dict(private=True), {"kid": "k1"})
        ),
        "edited claims": f"{head}.{b64(json.dumps(claims(jti='j-2')).encode())}.{signature}",
        "not a JWS": "not-a-jwt",
        "a JWE's five parts": "a.b.c.d.e",
    }
    for case, value in refused.items():
        assert problem(value) is Problem.INVALID, case


@pytest.mark.parametrize("typ", [None, "jwt", "consent+jwt", "at+jwt+x"])
def test_another_type_is_refused(typ: str | None) -> None:
    assert problem(token(typ=typ)) is Problem.TYPE


def test_an_untyped_token_is_accepted_only_where_allowed() -> None:
    untyped = token(typ=None)
    expect = Expect("https://gw", frozenset({NO_TYP, "jwt"}), None)
    assert verify_jwt(untyped, KEYS, expect, NOW, Refused).claims["jti"] == "j-1"
    assert verify_jwt(token(typ="JWT"), KEYS, expect, NOW, Refused).kid == "k1"
    assert problem(token(), expect) is Problem.TYPE


def test_issuer_and_audience() -> None:
    assert problem(token(iss="https://elsewhere")) is Problem.ISSUER
    assert problem(token(iss=None)) is Problem.ISSUER
    assert problem(token(aud="another-service")) is Problem.AUDIENCE
    assert problem(token(aud=None)) is Problem.AUDIENCE
    assert problem(token(aud=[1, ["credit-gateway"]])) is Problem.AUDIENCE
    both = token(aud=["another-service", "credit-gateway"])
    assert verify_jwt(both, KEYS, EXPECT, NOW, Refused).kid == "k1"
    # A kind of token without an audience does not look at it.
    expect = Expect("https://gw", frozenset({"at+jwt"}), None)
    assert verify_jwt(token(aud="anything"), KEYS, expect, NOW, Refused).kid == "k1"


def test_required_claims() -> None:
    assert problem(token(jti=None)) is Problem.CLAIMS
    assert problem(token(exp=None)) is Problem.CLAIMS
    with pytest.raises(Refused, match="Missing claim: 'jti'"):
        verify_jwt(token(jti=None), KEYS, EXPECT, NOW, Refused)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"exp": T - 30}, Problem.EXPIRED),  # exp + skew is now: expired (RFC 7519 4.1.4)
        ({"exp": T - 29}, None),
        ({"nbf": T + 31}, Problem.NOT_YET_VALID),
        ({"nbf": T + 30}, None),
        ({"iat": T + 31, "nbf": None}, Problem.NOT_YET_VALID),
        ({"iat": T + 30}, None),
        ({"exp": 10**400}, None),  # too large for a float: compared exactly, no overflow
        ({"exp": float(T + 300)}, None),
        ({"exp": True}, Problem.CLAIMS),
        ({"exp": "9999999999"}, Problem.CLAIMS),
        ({"nbf": [T]}, Problem.CLAIMS),
        ({"iat": float("nan")}, Problem.CLAIMS),
    ],
)
def test_times_with_skew(changes: dict[str, Any], expected: Problem | None) -> None:
    value = token(**changes)
    if expected is None:
        assert verify_jwt(value, KEYS, EXPECT, NOW, Refused).kid == "k1"
    else:
        assert problem(value) is expected


def test_without_now_the_times_are_left_to_the_caller() -> None:
    expired = token(exp=T - 3600, iat=T - 7200, nbf=T - 7200)
    assert verify_jwt(expired, KEYS, EXPECT, None, Refused).claims["exp"] == T - 3600
    # ...but not the rest.
    assert problem(token(exp=T - 3600, aud="elsewhere"), now=None) is Problem.AUDIENCE


def test_the_callers_own_error_is_raised() -> None:
    class Mine(Exception):
        pass

    with pytest.raises(Mine, match="expired"):
        verify_jwt(token(exp=T - 60), KEYS, EXPECT, NOW, lambda p, d: Mine(f"{p.value}: {d}"))


def test_the_verified_cache_keeps_a_value_while_its_key_is_live() -> None:
    cache: VerifiedCache[str] = VerifiedCache(10)
    verified: list[str] = []
    live = {"k1"}

    def verify() -> tuple[str, str | None]:
        verified.append("t")
        return "value", "k1"

    assert cache.get("t", live.__contains__, verify) == "value"
    assert cache.get("t", live.__contains__, verify) == "value"
    assert verified == ["t"]
    live.clear()  # the key retired: verified again
    assert cache.get("t", live.__contains__, verify) == "value"
    assert verified == ["t", "t"]
    cache.discard("t")
    assert cache.get("t", {"k1"}.__contains__, verify) == "value"
    assert len(verified) == 3
