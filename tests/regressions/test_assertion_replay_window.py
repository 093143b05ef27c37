"""A used client assertion forgotten while a verifier would still accept it: a replay.

Fixed in dcc024f ("replay window"): the trust store swept used assertions by the expiry of the
assertion being stored, minus an hour, so a later assertion with a long life swept away one
that had expired seconds ago but was still inside the verifier's leeway, and that one could be
used again. Used assertions are now kept until ASSERTION_RETENTION (10 minutes) past now.
(Moved here from tests/integration/test_trust_store.py, added with the fix in 8818458.)
"""

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
