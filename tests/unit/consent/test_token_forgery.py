"""Consent tokens made or edited by someone other than the gateway (consent/tokens.py): edited
claims, foreign keys, alg none and HS256, and any one-character edit either verify to exactly
what the gateway issued or are the one opaque refusal. (test_consent_tokens.py has what a
token carries, expiry, issuer, type and key rotation.)"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey
from support.jose import b64, forged
from support.keys import ISSUER, Keys, consent_verifier

from credit_gateway.consent.tokens import ConsentClaims, ConsentTokenError, issue
from credit_gateway.domain.consent import Consent, ConsentStatus, ConsentTerms

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=30)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TERMS = ConsentTerms(
    "zx-credit", "LOAN_APPROVAL", "", frozenset({"TAX.PAID"}), frozenset(), NOW, NOW, NOW, UNTIL, 5
)
CONSENT = Consent("cns_1", "sbj_1", TERMS, ConsentStatus.ACTIVE, 0, NOW, NOW, "real_name")
CLAIMS = ConsentClaims("cns_1", "sbj_1", "zx-credit", UNTIL)
KEYS = Keys()
TOKEN = issue(KEYS(), ISSUER, CONSENT)


def part(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def outcome(token: str, now: datetime = NOW) -> ConsentClaims | tuple[str, str, str | None]:
    """The claims, or the refusal's reason, message and consent."""
    try:
        return consent_verifier(KEYS).verify(token, now)
    except ConsentTokenError as error:
        return error.reason, error.message, error.consent_id


# The one refusal: its message says the reason and nothing more, and it names no consent.
INVALID = ("CONSENT_TOKEN_INVALID", "CONSENT_TOKEN_INVALID", None)


def test_a_genuine_token_verifies_until_the_second_it_expires() -> None:
    assert outcome(TOKEN, UNTIL - timedelta(microseconds=1)) == CLAIMS
    assert outcome(TOKEN, UNTIL) == ("CONSENT_EXPIRED", "CONSENT_EXPIRED", "cns_1")


@pytest.mark.parametrize(
    "change",
    [
        {"grantee": "thief-credit"},
        {"consent_id": "cns_2"},
        {"sub": "sbj_2"},
        {"exp": int((UNTIL + timedelta(days=365)).timestamp())},
    ],
    ids=lambda change: next(iter(change)),
)
def test_edited_claims_under_the_genuine_signature_are_invalid(change: dict[str, Any]) -> None:
    header, _, signature = TOKEN.split(".")
    body = b64(json.dumps({**part(TOKEN, 1), **change}).encode())
    assert outcome(f"{header}.{body}.{signature}") == INVALID


def test_the_gateways_kid_on_a_key_of_our_own_is_invalid() -> None:
    own = ECKey.generate_key("P-256")
    assert outcome(jwt.encode(part(TOKEN, 0), part(TOKEN, 1), own, algorithms=["ES256"])) == (
        INVALID
    )


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_another_algorithm_is_invalid(alg: str) -> None:
    # HS256's key confusion: an HMAC keyed with the public key the gateway publishes.
    public_pem = (
        KEYS()
        .current.private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {**part(TOKEN, 0), "alg": alg}
    key = None if alg == "none" else public_pem
    assert outcome(forged(header, part(TOKEN, 1), key)) == INVALID


@pytest.mark.parametrize("garbage", ["", "a.b", "...", "x" * 10_000, TOKEN + "."])
def test_garbage_is_invalid(garbage: str) -> None:
    assert outcome(garbage) == INVALID


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, len(TOKEN) - 1), char=st.sampled_from(B64URL + "."))
def test_any_edit_verifies_to_the_same_claims_or_is_the_one_refusal(
    position: int, char: str
) -> None:
    # Base64url's last character carries spare bits: an edit there may decode to the same bytes
    # and verify. Whatever verifies says exactly what the gateway issued.
    edited = TOKEN[:position] + char + TOKEN[position + 1 :]
    assert outcome(edited) in (CLAIMS, INVALID)
