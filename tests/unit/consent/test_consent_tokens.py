"""Consent tokens (consent/tokens.py): what they carry (the subject by its opaque id, never its
code), expiry, issuer, type and key rotation; every refusal is one opaque reason, but an expired
token, which still names its consent. (test_token_forgery.py has tokens forged or edited.)"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt
from support.keys import ISSUER, Keys, consent_verifier, signing_key

from credit_gateway.auth.keyring import KeyRing, KeyState, SigningKey
from credit_gateway.consent import tokens as consent_tokens
from credit_gateway.consent.tokens import ConsentTokenError, ConsentTokenVerifier
from credit_gateway.domain.catalog import Category
from credit_gateway.domain.consent import Consent, ConsentStatus, ConsentTerms

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=30)
TERMS = ConsentTerms(
    "zx-credit",
    "LOAN_APPROVAL",
    "loan no. 42",
    frozenset({"ADM.PUNISHMENT"}),
    frozenset({Category.ADMINISTRATIVE_PUNISHMENT}),
    NOW - timedelta(days=365),
    NOW,
    NOW,
    UNTIL,
    3,
)
# Named by the gateway's opaque subject id, as every stored consent is.
CONSENT = Consent("cns_1", "sbj_7f3a", TERMS, ConsentStatus.ACTIVE, 0, NOW, NOW, "real_name")


@pytest.fixture
def keys() -> Keys:
    return Keys()


def rotate(keys: Keys, kid: str) -> None:
    current = keys().current
    keys.rotate(SigningKey(current.kid, KeyState.PREVIOUS, current.private_key), signing_key(kid))


def consent_refusal(
    verifier: ConsentTokenVerifier, token: str, now: datetime = NOW
) -> tuple[str, str | None]:
    with pytest.raises(ConsentTokenError) as refused:
        verifier.verify(token, now)
    return refused.value.reason, refused.value.consent_id


def test_a_consent_token_names_the_subject_by_its_opaque_id_only(keys: Keys) -> None:
    token = consent_tokens.issue(keys(), ISSUER, CONSENT)
    assert pyjwt.get_unverified_header(token) == {"typ": "consent+jwt", "alg": "ES256", "kid": "k1"}
    claims = pyjwt.decode(token, options={"verify_signature": False})
    names = {"iss", "jti", "consent_id", "sub", "grantee", "scope", "nbf", "exp", "iat"}
    names.add("valid_until_us")
    assert set(claims) == names
    assert claims["sub"] == "sbj_7f3a"
    verified = consent_verifier(keys).verify(token, NOW)
    assert (verified.consent_id, verified.subject_id, verified.grantee) == (
        "cns_1",
        "sbj_7f3a",
        "zx-credit",
    )


def test_an_expired_consent_token_still_names_its_consent(keys: Keys) -> None:
    token = consent_tokens.issue(keys(), ISSUER, CONSENT)
    verifier = consent_verifier(keys)
    assert consent_refusal(verifier, token, UNTIL) == ("CONSENT_EXPIRED", "cns_1")


def test_every_other_consent_token_failure_is_one_opaque_reason(keys: Keys) -> None:
    verifier = consent_verifier(keys)
    genuine = consent_tokens.issue(keys(), ISSUER, CONSENT)
    claims = pyjwt.decode(genuine, options={"verify_signature": False})
    header = {"typ": "consent+jwt", "alg": "ES256", "kid": "k1"}
    jwk = keys().current_jwk
    no_grantee = {name: value for name, value in claims.items() if name != "grantee"}
    refused = {
        "another issuer": consent_tokens.issue(keys(), "https://elsewhere", CONSENT),
        "an access token's type": jwt.encode({**header, "typ": "at+jwt"}, claims, jwk),
        "no typ": jwt.encode({"alg": "ES256", "kid": "k1"}, claims, jwk),
        "no grantee": jwt.encode(header, no_grantee, jwk),
        "a string exp": jwt.encode(header, {**claims, "exp": "never"}, jwk),
        "signed by another key": consent_tokens.issue(
            KeyRing([signing_key("k1")]), ISSUER, CONSENT
        ),
        "garbage": "not.a.token",
    }
    for case, token in refused.items():
        assert consent_refusal(verifier, token) == ("CONSENT_TOKEN_INVALID", None), case


def test_a_consent_token_verifies_until_its_key_retires(keys: Keys) -> None:
    verifier = consent_verifier(keys)
    token = consent_tokens.issue(keys(), ISSUER, CONSENT)
    assert verifier.verify(token, NOW).consent_id == "cns_1"  # cached
    rotate(keys, "k2")
    assert verifier.verify(token, NOW).consent_id == "cns_1"
    rotate(keys, "k3")
    assert consent_refusal(verifier, token) == ("CONSENT_TOKEN_INVALID", None)


def _ending_at(until: datetime) -> Consent:
    return replace(CONSENT, terms=replace(TERMS, valid_until=until))


@given(st.integers(min_value=0, max_value=999_999))
def test_a_token_expires_at_its_consents_microsecond(micros: int) -> None:
    # Issue #11 item 7: `exp` alone is a whole second; the token ends when the consent does.
    keys = Keys()
    until = UNTIL + timedelta(microseconds=micros)
    token = consent_tokens.issue(keys(), ISSUER, _ending_at(until))
    verifier = consent_verifier(keys)
    assert verifier.verify(token, until - timedelta(microseconds=1)).expires_at == until
    assert consent_refusal(verifier, token, until) == ("CONSENT_EXPIRED", "cns_1")
    claims = pyjwt.decode(token, options={"verify_signature": False})
    # Rounded up: a reader of `exp` alone never holds the token valid past the consent's end
    # by a second or more, nor refuses it before.
    assert claims["exp"] - 1 < until.timestamp() <= claims["exp"]


def test_a_token_whose_exact_expiry_disagrees_with_its_exp_is_invalid(keys: Keys) -> None:
    genuine = consent_tokens.issue(keys(), ISSUER, CONSENT)
    claims = pyjwt.decode(genuine, options={"verify_signature": False})
    header = {"typ": "consent+jwt", "alg": "ES256", "kid": "k1"}
    later = claims["valid_until_us"] + 2_000_000
    for changed in ({"valid_until_us": later}, {"valid_until_us": str(later)}):
        token = jwt.encode(header, {**claims, **changed}, keys().current_jwk)
        assert consent_refusal(consent_verifier(keys), token) == ("CONSENT_TOKEN_INVALID", None)


def test_a_token_issued_without_the_exact_expiry_expires_at_exp(keys: Keys) -> None:
    genuine = consent_tokens.issue(keys(), ISSUER, CONSENT)
    claims = pyjwt.decode(genuine, options={"verify_signature": False})
    del claims["valid_until_us"]
    header = {"typ": "consent+jwt", "alg": "ES256", "kid": "k1"}
    token = jwt.encode(header, claims, keys().current_jwk)
    assert consent_verifier(keys).verify(token, NOW).expires_at == UNTIL
