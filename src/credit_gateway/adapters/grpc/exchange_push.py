"""ExchangeService.PushRecords: a platform's client stream of pushed records in, one result per
record out (services/push.py). The stream is read as SubmitRecords reads its own: checked in
chunks on a stream thread, written once after the client half-closed, rolled back if it left."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import grpc

from credit_gateway.adapters.grpc.interceptor import current_call
from credit_gateway.adapters.grpc.submission import (
    finish_unless_gone,
    incoming,
    read_in_chunks,
)
from credit_gateway.adapters.grpc.v1 import exchange_pb2, submission_pb2
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.push import PushedIncoming, PushService
from credit_gateway.services.submission import SubmissionService

_Ctx = grpc.aio.ServicerContext[Any, Any]


class Push:
    def __init__(self, gateway: Gateway, blocking: Blocking) -> None:
        self.gateway, self.blocking = gateway, blocking
        self.service = PushService(gateway, SubmissionService(gateway))

    async def push_records(
        self, request_iterator: AsyncIterator[exchange_pb2.PushedRecord], context: _Ctx
    ) -> submission_pb2.SubmissionResult:
        # Refused (and on record) before a message is read when no push agreement is in force.
        batch = await self.blocking.stream(self.service.begin, current_call().client.id)
        await read_in_chunks(
            self.blocking,
            request_iterator,
            pushed,
            functools.partial(self.service.check, batch),
            self.gateway.settings.max_stream_messages,
        )
        return await finish_unless_gone(
            self.blocking, context, functools.partial(self.service.finish, batch)
        )


def pushed(pb: exchange_pb2.PushedRecord) -> PushedIncoming:
    """The pushed record as the service checks it; its record converted as a submission's."""
    return PushedIncoming(
        incoming(pb.record),
        pb.provider_code,
        pb.provider_jwks,
        pb.origin_record_id,
        pb.origin_signature,
        pb.origin_key_id,
    )
