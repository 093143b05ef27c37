"""Access tokens forged with `alg: none` or with HS256 keyed by the gateway's public key.

Guarded since 2ed4303 (auth/tokens.py: an explicit ES256 allow-list, "never joserfc's
default"; now auth/jwt.ALGORITHMS); end to end in tests/integration/test_auth.py since 45b4723.
Without the allow-list, a verifier that honours the header's `alg` accepts an unsigned token,
or an HMAC anyone can compute from the published JWKS (RFC 8725 sections 2.1 and 3.1).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from support.jose import forged
from support.keys import Keys, access_verifier, participant_token

from credit_gateway.errors import Unauthenticated

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CNF = "x5t-of-the-agency"


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512"])
def test_a_token_in_another_algorithm_is_refused(alg: str) -> None:
    keys = Keys()
    genuine, claims = participant_token(keys, CNF, NOW)
    verifier = access_verifier(keys)
    assert verifier.verify(genuine, CNF, NOW).id == "zx-credit"
    public_pem = (
        keys()
        .current.private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"typ": "at+jwt", "alg": alg, "kid": keys().current.kid}
    token = forged(header, claims, None if alg == "none" else public_pem)
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token, CNF, NOW)
    assert caught.value.reason == "TOKEN_INVALID"
