"""Access tokens (auth/tokens.py): the subject is named by a pairwise pseudonym and resolved back
to its code inside the gateway only; issuer and verifier follow the keyring through one callable,
and a cached token stops verifying once its key retires."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
from joserfc import jwt
from support.keys import (
    Keys,
    access_issuer,
    access_verifier,
    signing_key,
)

from credit_gateway.auth.keyring import KeyState, SigningKey
from credit_gateway.auth.scopes import SUBJECT_SELF, PrincipalKind
from credit_gateway.auth.tokens import TokenIssuer, TokenVerifier
from credit_gateway.errors import Unauthenticated

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
PERSON = "11010519491231002X"
CNF = "cnf-of-the-portal"


def rotate(keys: Keys, kid: str) -> None:
    """`credit-gateway keys rotate`: a new current key, the current one previous, the previous
    one retired (out of the ring)."""
    current = keys().current
    keys.rotate(SigningKey(current.kid, KeyState.PREVIOUS, current.private_key), signing_key(kid))


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def issuer(keys: Keys) -> TokenIssuer:
    return access_issuer(keys)


@pytest.fixture
def verifier(keys: Keys) -> TokenVerifier:
    return access_verifier(keys)


def subject_token(issuer: TokenIssuer, client_id: str = "portal", code: str = PERSON) -> str:
    token, _ = issuer.issue(
        client_id=client_id,
        subject=code,
        kind=PrincipalKind.SUBJECT,
        scopes=[SUBJECT_SELF],
        cnf_x5t=CNF,
        now=NOW,
    )
    return token


def decoded(token: str) -> str:
    """Header and claims of a token, as the JSON anyone holding it can read."""
    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, options={"verify_signature": False})
    return json.dumps([header, claims])


def test_a_subject_token_names_a_pseudonym_and_verifies_to_the_code(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    token = subject_token(issuer)
    assert PERSON not in decoded(token).upper()
    assert PERSON[:17] not in token
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert claims["principal"] == "subject"
    principal = verifier.verify(token, CNF, NOW)
    assert (principal.kind, principal.id, principal.client_id) == (
        PrincipalKind.SUBJECT,
        PERSON,
        "portal",
    )


def test_the_pseudonym_is_stable_per_client_and_pairwise(issuer: TokenIssuer) -> None:
    def sub(token: str) -> str:
        return str(pyjwt.decode(token, options={"verify_signature": False})["sub"])

    first, again = subject_token(issuer), subject_token(issuer)
    assert first != again  # another jti
    assert sub(first) == sub(again)
    assert sub(subject_token(issuer, "other-portal")) != sub(first)


def test_a_subject_token_with_another_clients_pseudonym_is_refused(
    keys: Keys, issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    """Signed by the gateway's key, but its sub was made for another client (as a token minted
    by a faulty or older gateway might be): it names no subject for this client."""
    claims = pyjwt.decode(
        subject_token(issuer, "other-portal"), options={"verify_signature": False}
    )
    claims["client_id"] = "portal"
    header = {"typ": "at+jwt", "alg": "ES256", "kid": "k1"}
    token = jwt.encode(header, claims, keys().current_jwk, algorithms=["ES256"])
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token, CNF, NOW)
    assert refused.value.reason == "TOKEN_INVALID"


def test_a_participant_token_names_the_participant(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    token, claims = issuer.issue(
        client_id="zx-credit",
        subject="zx-credit",
        kind=PrincipalKind.PARTICIPANT,
        scopes=["inquiry.open"],
        cnf_x5t=CNF,
        now=NOW,
    )
    assert claims["sub"] == "zx-credit"
    assert verifier.verify(token, CNF, NOW).id == "zx-credit"


def test_issuer_and_verifier_follow_the_keyring(
    keys: Keys, issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    old = subject_token(issuer)
    assert verifier.verify(old, CNF, NOW).id == PERSON  # now cached
    rotate(keys, "k2")
    new = subject_token(issuer)
    assert pyjwt.get_unverified_header(new)["kid"] == "k2"
    assert verifier.verify(new, CNF, NOW).id == PERSON
    assert verifier.verify(old, CNF, NOW).id == PERSON  # k1 is previous: still verifies
    rotate(keys, "k3")  # k1 retires
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(old, CNF, NOW)
    assert refused.value.reason == "TOKEN_INVALID"
    assert verifier.verify(new, CNF, NOW).id == PERSON


def test_read_gives_a_tokens_claims_expired_or_not(issuer: TokenIssuer) -> None:
    token = subject_token(issuer)
    claims = issuer.read(token)
    assert claims is not None
    assert claims["client_id"] == "portal"
    other = dataclasses.replace(issuer, audience="another-service")
    assert other.read(token) is None
    assert issuer.read("garbage") is None


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (NOW + timedelta(minutes=5, seconds=30), "TOKEN_EXPIRED"),
        (NOW - timedelta(minutes=1), "TOKEN_INVALID"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_times_are_checked_with_skew(
    issuer: TokenIssuer, verifier: TokenVerifier, at: datetime, reason: str
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(subject_token(issuer), CNF, at)
    assert refused.value.reason == reason


def test_a_cached_token_still_expires_and_stays_bound(
    issuer: TokenIssuer, verifier: TokenVerifier
) -> None:
    token = subject_token(issuer)
    verifier.verify(token, CNF, NOW)
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token, "another-certificate", NOW)
    assert refused.value.reason == "TOKEN_NOT_BOUND"
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token, CNF, NOW + timedelta(minutes=6))
    assert refused.value.reason == "TOKEN_EXPIRED"
