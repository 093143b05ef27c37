"""WatchConsents runs for as long as the grantee keeps it: its standing is checked as it runs,
and watches are capped so that they cannot take every server thread."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from support.harness import Harness, make_agreement, metadata
from support.rpc import status_of

from credit_gateway.adapters.grpc.v1 import consent_pb2, consent_pb2_grpc
from credit_gateway.services import operator as registry


def _watch(
    harness: Harness, token: str, channel: grpc.Channel
) -> tuple[threading.Thread, list[grpc.RpcError]]:
    stream = consent_pb2_grpc.ConsentServiceStub(channel).WatchConsents(
        consent_pb2.WatchConsentsRequest(), metadata=metadata(token), timeout=30
    )
    ended: list[grpc.RpcError] = []

    def follow() -> None:
        try:
            for _ in stream:
                pass
        except grpc.RpcError as error:
            ended.append(error)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread, ended


def test_a_suspended_grantee_loses_its_open_watch(harness: Harness) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    make_agreement(harness, agency, categories=("administrative_permit",))
    thread, ended = _watch(harness, harness.token(agency), agency.channel)
    time.sleep(0.5)  # the stream is open and polling
    registry.suspend_participant(harness.settings, "zx-credit")
    thread.join(timeout=10)  # re-checked every 2 s
    assert not thread.is_alive()
    assert status_of(ended[0]) == (grpc.StatusCode.PERMISSION_DENIED, "PARTICIPANT_SUSPENDED")


def test_a_grantee_may_hold_two_watches_not_three(harness: Harness) -> None:
    agency = harness.add_participant("zx-credit", "credit-agency")
    token = harness.token(agency)
    first, _ = _watch(harness, token, agency.channel)
    second, _ = _watch(harness, token, agency.channel)
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
