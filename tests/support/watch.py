"""A WatchConsents stream followed on a thread of its own, for tests that wait for it to end."""

from __future__ import annotations

import threading

import grpc
from support.harness import metadata

from credit_gateway.adapters.grpc.v1 import consent_pb2, consent_pb2_grpc


def follow_watch(token: str, channel: grpc.Channel) -> tuple[threading.Thread, list[grpc.RpcError]]:
    """The thread reading the stream, and the error that ended it once it has."""
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
