"""An access token presented over a connection with another client certificate.

Guarded since 2ed4303 ("bearer token checks bound to the TLS certificate"), RFC 8705 section 3
(`cnf.x5t#S256`); end to end in tests/integration/test_auth.py. Without it a token that leaks
(a log, a proxy, a compromised agency) works for whoever holds it. The binding is checked on
every use, after the cache: a token verified once must not pass on another connection because
its verification was cached.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.keys import Keys, access_verifier, participant_token

from credit_gateway.auth.tokens import TokenVerifier
from credit_gateway.errors import Unauthenticated

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def token(keys: Keys) -> str:
    return participant_token(keys, "x5t-of-zx-credit", NOW)[0]


def not_bound(verifier: TokenVerifier, token: str, peer: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token, peer, NOW)
    assert caught.value.reason == "TOKEN_NOT_BOUND"


@pytest.mark.parametrize("peer", ["x5t-of-the-thief", ""])
def test_a_token_is_refused_over_another_certificate(peer: str) -> None:
    keys = Keys()
    not_bound(access_verifier(keys), token(keys), peer)


def test_a_token_verified_and_cached_is_still_refused_over_another_certificate() -> None:
    keys = Keys()
    verifier, issued = access_verifier(keys), token(keys)
    assert verifier.verify(issued, "x5t-of-zx-credit", NOW).client_id == "zx-credit"
    not_bound(verifier, issued, "x5t-of-the-thief")
    assert verifier.verify(issued, "x5t-of-zx-credit", NOW).client_id == "zx-credit"
