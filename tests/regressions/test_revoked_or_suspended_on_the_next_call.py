"""A revoked token, a suspended participant or a withdrawn licence still served on the next call.

Guarded since 2ed4303 (the interceptor, step 4: not revoked, and the participant may act now,
"read per call, not cached"); kept per call by 698bcfa (the standing read on a pinned
connection) and by 5c4b446 (for inquiries, the same read inside the release transaction). A
verified token's claims are cached: were the standing cached with them, a revocation or a
suspension would wait out the token's lifetime while the participant went on calling.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import jwt as pyjwt
import pytest
from support.harness import Harness, Participant, metadata
from support.rpc import refusal
from support.scenario import Consented, punishment

from credit_gateway.adapters.grpc.v1 import submission_pb2_grpc
from credit_gateway.adapters.storage.trust import SqlTrustStore
from credit_gateway.services import operator as registry

Change = Callable[[Harness, Participant, str], None]
DENIED, UNAUTHENTICATED = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED


def revoke(h: Harness, _: Participant, token: str) -> None:
    """What POST /revoke does (RFC 7009)."""
    claims = pyjwt.decode(token, options={"verify_signature": False})
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    SqlTrustStore(h.db, h.clock).revoke_token(claims["jti"], expires)


def suspend(h: Harness, p: Participant, _: str) -> None:
    registry.suspend_participant(h.settings, p.id)


def revoke_licence(h: Harness, p: Participant, _: str) -> None:
    registry.change_licence(h.settings, p.id, valid_until=None, revoked=True)


def lapse_licence(h: Harness, p: Participant, _: str) -> None:
    yesterday = h.clock.now - timedelta(days=1)
    registry.change_licence(h.settings, p.id, valid_until=yesterday, revoked=None)


AGENCY_CASES = {
    "token revoked": (revoke, (UNAUTHENTICATED, "TOKEN_REVOKED")),
    "agency suspended": (suspend, (DENIED, "PARTICIPANT_SUSPENDED")),
    "licence revoked": (revoke_licence, (DENIED, "LICENCE_REVOKED")),
    "licence lapsed": (lapse_licence, (DENIED, "LICENCE_EXPIRED")),
}
PROVIDER_CASES = {
    "token revoked": (revoke, (UNAUTHENTICATED, "TOKEN_REVOKED")),
    "provider suspended": (suspend, (DENIED, "PARTICIPANT_SUSPENDED")),
}


@pytest.mark.parametrize(("change", "status"), AGENCY_CASES.values(), ids=AGENCY_CASES.keys())
def test_an_inquiry_right_after_the_change_is_refused(
    world: Consented, change: Change, status: tuple[grpc.StatusCode, str]
) -> None:
    consent_token, access = world.grant(), world.h.token(world.agency)
    assert len(world.query(consent_token, access_token=access).records) == 1  # token cached
    change(world.h, world.agency, access)
    assert refusal(lambda: world.query(consent_token, access_token=access)) == status


@pytest.mark.parametrize(("change", "status"), PROVIDER_CASES.values(), ids=PROVIDER_CASES.keys())
def test_a_submission_right_after_the_change_is_refused(
    world: Consented, change: Change, status: tuple[grpc.StatusCode, str]
) -> None:
    access = world.h.token(world.provider)
    stub = submission_pb2_grpc.SubmissionServiceStub(world.provider.channel)

    def submit(record_id: str) -> object:
        record = punishment(world.provider, record_id, world.h.clock.now)
        return stub.SubmitRecords(iter([record]), metadata=metadata(access), timeout=10)

    submit("before")
    change(world.h, world.provider, access)
    assert refusal(lambda: submit("after")) == status
