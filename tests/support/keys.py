"""The gateway's signing keys and its token issuers and verifiers, made in memory for tests that
need no server. Built here only, so that a change of their constructors is made once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from credit_gateway.auth.keyring import KeyRing, KeyState, SigningKey
from credit_gateway.auth.scopes import PrincipalKind
from credit_gateway.auth.tokens import TokenIssuer, TokenVerifier
from credit_gateway.consent.tokens import ConsentTokenVerifier
from credit_gateway.crypto.master import MasterKey
from credit_gateway.crypto.pseudonyms import SubjectPseudonyms

ISSUER = "https://gateway.test"
AUDIENCE = "credit-gateway"
MASTER = MasterKey(bytes(range(32)))
TTL = timedelta(minutes=5)
SKEW = timedelta(seconds=30)


def signing_key(kid: str, state: KeyState = KeyState.CURRENT) -> SigningKey:
    return SigningKey(kid, state, ec.generate_private_key(ec.SECP256R1()))


class Keys:
    """The keyring as the gateway hands it out: read on every use, so a test may rotate it."""

    def __init__(self, *keys: SigningKey) -> None:
        self.ring = KeyRing(keys or (signing_key("k1"),))

    def __call__(self) -> KeyRing:
        return self.ring

    def rotate(self, *keys: SigningKey) -> None:
        self.ring = KeyRing(keys)


def consent_verifier(keys: Keys, issuer: str = ISSUER) -> ConsentTokenVerifier:
    return ConsentTokenVerifier(keys, issuer)


def access_issuer(keys: Keys, audience: str = AUDIENCE) -> TokenIssuer:
    return TokenIssuer(keys, ISSUER, audience, TTL, SubjectPseudonyms(MASTER))


def access_verifier(keys: Keys) -> TokenVerifier:
    return TokenVerifier(keys, ISSUER, AUDIENCE, SKEW, SubjectPseudonyms(MASTER))


def participant_token(
    keys: Keys, cnf_x5t: str, now: datetime, participant: str = "zx-credit"
) -> tuple[str, dict[str, Any]]:
    """An access token for a participant, bound to the certificate `cnf_x5t`, and its claims."""
    return access_issuer(keys).issue(
        client_id=participant,
        subject=participant,
        kind=PrincipalKind.PARTICIPANT,
        scopes=["inquiry.open", "inquiry.authorized"],
        cnf_x5t=cnf_x5t,
        now=now,
    )
