"""A client assertion (RFC 7523 private_key_jwt) used twice.

Fixed in bf499c4 (the token endpoint: "single-use jti"): the trust store keeps every used
assertion's (issuer, jti) under a primary key, so a second use is refused on any replica, and an
assertion captured in transit cannot buy a second token (RFC 7523 section 3, item 7). End to end
in tests/integration/test_auth.py; the retention window is test_assertion_replay_window.py.
"""

from __future__ import annotations

from datetime import timedelta

from support.harness import Clock

from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.trust import SqlTrustStore


def test_an_assertion_is_accepted_once_per_issuer(db: Database, clock: Clock) -> None:
    store = SqlTrustStore(db, clock)
    expires = clock.now + timedelta(minutes=5)
    assert store.consume_assertion("zx-credit", "jti-1", expires)
    assert not store.consume_assertion("zx-credit", "jti-1", expires)
    assert not SqlTrustStore(db, clock).consume_assertion("zx-credit", "jti-1", expires)  # replica
    assert store.consume_assertion("other-credit", "jti-1", expires)  # another issuer's jti
