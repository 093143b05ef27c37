"""ArchiveService (Art 30-31): restoration decisions from providing units, deletions on a
subject's application (services/archive.py). Who asks comes from the token the interceptor
verified, never from the request: the providing unit's participant id, the subject's code."""

from __future__ import annotations

from typing import Any

import grpc

from credit_gateway.adapters.grpc import convert
from credit_gateway.adapters.grpc.interceptor import current_call
from credit_gateway.adapters.grpc.v1 import rights_pb2, rights_pb2_grpc
from credit_gateway.domain.restoration import RestorationDecision
from credit_gateway.errors import InvalidArgument
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.archive import Archived, ArchiveService

_Ctx = grpc.aio.ServicerContext[Any, Any]


class ArchiveServicer(rights_pb2_grpc.ArchiveServiceServicer):
    def __init__(self, gateway: Gateway, blocking: Blocking) -> None:
        self.gateway = gateway
        self.blocking = blocking
        self.service = ArchiveService(gateway)

    async def SubmitRestoration(
        self, request: rights_pb2.RestorationDecision, context: _Ctx
    ) -> rights_pb2.ArchivedRecord:
        decision = _decision(current_call().client.id, request)
        archived = await self.blocking.call(
            self.service.restore, decision, request.signature, request.key_id
        )
        return _archived(archived)

    async def ApplyDeletion(
        self, request: rights_pb2.ApplyDeletionRequest, context: _Ctx
    ) -> rights_pb2.ArchivedRecord:
        subject = current_call().principal.id
        # The gateway's own ids are at most 40 characters.
        record_id = convert.identifier(request.record_id, "record_id", max_length=40)
        return _archived(await self.blocking.call(self.service.delete, subject, record_id))


def _decision(provider_id: str, pb: rights_pb2.RestorationDecision) -> RestorationDecision:
    if not pb.HasField("decided_at"):
        raise InvalidArgument.field("decided_at", "required", reason="MISSING_FIELD")
    return RestorationDecision(
        provider_id,
        pb.provider_record_id,
        pb.decision_number,
        convert.required_datetime(pb.decided_at, "decided_at"),
        pb.basis,
    )


def _archived(archived: Archived) -> rights_pb2.ArchivedRecord:
    return rights_pb2.ArchivedRecord(
        record_id=archived.record_id,
        item_code=archived.item_code,
        archived_at=convert.to_timestamp(archived.archived_at),
        archive_reason=archived.archive_reason,
        audit_entry_id=archived.audit_entry_id,
    )
