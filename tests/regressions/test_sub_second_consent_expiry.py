"""A consent ending within a second: refused early by its token while GetConsent said ACTIVE.

Issue #11 item 7: the consent token's `exp` was the consent's `valid_until` rounded down to a
second, so a query in the last fraction of a second was refused CONSENT_EXPIRED while the
consent's own status (and the release's conditional write) still held it active. The token now
carries the expiry to the microsecond (consent/tokens.py `valid_until_us`), and the token, the
consent's status and the release agree on it.
"""

from __future__ import annotations

from datetime import timedelta

import grpc
from support.rpc import refusal
from support.scenario import Consented

from credit_gateway.adapters.grpc.convert import to_timestamp
from credit_gateway.adapters.grpc.v1 import consent_pb2

ACTIVE, EXPIRED = consent_pb2.CONSENT_STATUS_ACTIVE, consent_pb2.CONSENT_STATUS_EXPIRED


def status(world: Consented, consent_id: str) -> tuple[int, int]:
    shown = world.consents.GetConsent(
        consent_pb2.ConsentRef(consent_id=consent_id), metadata=world.subject_md(), timeout=10
    )
    return shown.status, shown.uses


def test_status_and_token_agree_to_the_microsecond(world: Consented) -> None:
    clock = world.h.clock
    until = clock.now + timedelta(days=1, milliseconds=600)
    granted = world.granted(valid_until=to_timestamp(until))
    token, consent_id = granted.token.token, granted.consent.consent_id

    clock.now = until - timedelta(milliseconds=300)  # after the whole second `exp` used to be
    assert status(world, consent_id) == (ACTIVE, 0)
    assert len(world.query(token).records) == 1
    assert status(world, consent_id) == (ACTIVE, 1)

    clock.now = until - timedelta(microseconds=1)
    assert len(world.query(token).records) == 1

    for at in (until, until + timedelta(microseconds=1), until + timedelta(seconds=1)):
        clock.now = at
        assert refusal(lambda: world.query(token)) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "CONSENT_EXPIRED",
        )
        assert status(world, consent_id) == (EXPIRED, 2)  # the refusals counted no use
    assert [outcome for _, outcome, _ in world.inquiries(consent_id)].count("REFUSED") == 3
