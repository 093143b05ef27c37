"""ExchangeService.PushRecords (placeholder: being built)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from credit_gateway.adapters.grpc.v1 import exchange_pb2, submission_pb2
from credit_gateway.errors import FailedPrecondition
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway

_Ctx = grpc.aio.ServicerContext[Any, Any]


class Push:
    def __init__(self, gateway: Gateway, blocking: Blocking) -> None:
        self.gateway, self.blocking = gateway, blocking

    async def push_records(
        self, request_iterator: AsyncIterator[exchange_pb2.PushedRecord], context: _Ctx
    ) -> submission_pb2.SubmissionResult:
        raise FailedPrecondition("PushRecords is not built yet", reason="NOT_BUILT")
