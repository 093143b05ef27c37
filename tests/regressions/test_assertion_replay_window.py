"""The trust store's memory of used client assertions (RFC 7523 section 3: a jti once)."""

from __future__ import annotations

from datetime import timedelta

from support.harness import Clock

from credit_gateway.adapters.storage.db import Database
from credit_gateway.adapters.storage.trust import SqlTrustStore


def test_an_assertion_is_remembered_past_its_expiry(db: Database, clock: Clock) -> None:
    store = SqlTrustStore(db, clock)
    expires = clock.now - timedelta(seconds=30)  # expired, but inside a verifier's leeway
    assert store.consume_assertion("portal", "jti-1", expires)
    # A later assertion with a long life used to sweep the first one away.
    assert store.consume_assertion("portal", "jti-2", clock.now + timedelta(hours=1))
    assert not store.consume_assertion("portal", "jti-1", expires)


def test_assertions_long_expired_are_forgotten(db: Database, clock: Clock) -> None:
    store = SqlTrustStore(db, clock)
    assert store.consume_assertion("portal", "jti-old", clock.now - timedelta(hours=1))
    assert store.consume_assertion("portal", "jti-new", clock.now)  # sweeps jti-old
    assert store.consume_assertion("portal", "jti-old", clock.now - timedelta(hours=1))
