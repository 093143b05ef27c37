"""WatchConsents runs for as long as the grantee keeps it, so watches are capped: they cannot
take every server thread. (That its standing is checked as it runs is
tests/regressions/test_watch_rechecks_standing.py.)"""

from __future__ import annotations

import time

import grpc
import pytest
from support.harness import Harness, metadata
from support.rpc import status_of
from support.watch import follow_watch

from credit_gateway.adapters.grpc.v1 import consent_pb2, consent_pb2_grpc


def test_a_grantee_may_hold_two_watches_not_three(harness: Harness) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    token = harness.token(agency)
    first, _ = follow_watch(token, agency.channel)
    second, _ = follow_watch(token, agency.channel)
    time.sleep(0.5)
    stream = consent_pb2_grpc.ConsentServiceStub(agency.channel).WatchConsents(
        consent_pb2.WatchConsentsRequest(), metadata=metadata(token), timeout=5
    )
    with pytest.raises(grpc.RpcError) as refused:
        next(iter(stream))
    assert status_of(refused.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAM_LIMIT")
    agency.channel.close()  # ends the two open streams
    first.join(timeout=10)
    second.join(timeout=10)
