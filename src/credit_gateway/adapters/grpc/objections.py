"""ObjectionService (Art 29): subjects file objections on their records; providing units answer.

Protobuf in and out; the rules are domain/objections.py, run by services/objections.py. A
subject's calls name it by its token's principal (the code its real-name portal asserted); a
providing unit's by its client certificate's participant.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import grpc

from credit_gateway.adapters.grpc import convert
from credit_gateway.adapters.grpc.interceptor import current_call
from credit_gateway.adapters.grpc.submission import incoming
from credit_gateway.adapters.grpc.v1 import rights_pb2, rights_pb2_grpc
from credit_gateway.domain.objections import Objection, State, written_result
from credit_gateway.errors import InvalidArgument
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.objections import ObjectionService
from credit_gateway.services.submission import SubmissionService

_Ctx = grpc.aio.ServicerContext[Any, Any]
_PB = rights_pb2.Objection
_STATES = {
    State.PENDING: _PB.STATE_PENDING,
    State.SUSPENDED: _PB.STATE_SUSPENDED,
    State.UPHELD: _PB.STATE_UPHELD,
    State.REJECTED: _PB.STATE_REJECTED,
}
_FROM_PB = {pb: state for state, pb in _STATES.items()}


class ObjectionServicer(rights_pb2_grpc.ObjectionServiceServicer):
    def __init__(self, gateway: Gateway, blocking: Blocking, submission: SubmissionService) -> None:
        self.gateway = gateway
        self.blocking = blocking
        self.submission = submission
        self.service = ObjectionService(gateway, submission)

    # --- subjects --------------------------------------------------------------------------
    async def FileObjection(
        self, request: rights_pb2.FileObjectionRequest, context: _Ctx
    ) -> rights_pb2.Objection:
        filed = await self.blocking.call(
            self.service.file,
            current_call().principal.id,
            _id(request.record_id, "record_id"),
            request.reason,
            request.evidence_reference,
        )
        return self._pb(filed)

    async def GetObjection(
        self, request: rights_pb2.ObjectionRef, context: _Ctx
    ) -> rights_pb2.Objection:
        found = await self.blocking.call(
            self.service.get,
            current_call().principal.id,
            _id(request.objection_id, "objection_id"),
        )
        return self._pb(found)

    async def ListObjections(
        self, request: rights_pb2.ListObjectionsRequest, context: _Ctx
    ) -> rights_pb2.ListObjectionsResponse:
        found = await self.blocking.call(
            self.service.list_own,
            current_call().principal.id,
            _states(request.states),
            request.limit,
        )
        return rights_pb2.ListObjectionsResponse(objections=[self._pb(o) for o in found])

    # --- providing units -------------------------------------------------------------------
    async def ListObjectionQueue(
        self, request: rights_pb2.ListObjectionsRequest, context: _Ctx
    ) -> rights_pb2.ListObjectionsResponse:
        found = await self.blocking.call(
            self.service.queue, current_call().client.id, _states(request.states), request.limit
        )
        return rights_pb2.ListObjectionsResponse(
            objections=[self._pb(o, provider=True) for o in found]
        )

    async def AnswerObjection(
        self, request: rights_pb2.AnswerObjectionRequest, context: _Ctx
    ) -> rights_pb2.Objection:
        objection_id = _id(request.objection_id, "objection_id")
        which = request.WhichOneof("answer")
        if which == "rejected":
            reasons, corrected = request.rejected.reasons, None
        elif which == "upheld":
            if not request.upheld.HasField("corrected"):
                raise InvalidArgument.field(
                    "upheld.corrected", "required: the corrected record", reason="MISSING_FIELD"
                )
            reasons, corrected = request.upheld.reasons, incoming(request.upheld.corrected)
        else:
            raise InvalidArgument.field("answer", "upheld or rejected", reason="MISSING_FIELD")
        answered = await self.blocking.call(
            self.service.answer, current_call().client.id, objection_id, reasons, corrected
        )
        return self._pb(answered, provider=True)

    # --- helpers ---------------------------------------------------------------------------
    def _pb(self, o: Objection, *, provider: bool = False) -> rights_pb2.Objection:
        """The objection as it stands now; the provider's own record id in its queue only."""
        now = self.gateway.clock()
        pb = rights_pb2.Objection(
            objection_id=o.id,
            record_id=o.record_id,
            item_code=o.item_code,
            state=_STATES[o.effective_state(now)],
            reason=o.reason,
            evidence_reference=o.evidence_reference,
            filed_at=convert.to_timestamp(o.filed_at),
            due_at=convert.to_timestamp(o.due_at),
            answer=o.answer or "",
            replacement_record_id=o.replacement_id or "",
            provider_record_id=o.provider_record_id if provider else "",
        )
        _set_time(pb, "suspended_at", o.effective_suspended_at(now))
        _set_time(pb, "answered_at", o.answered_at)
        text = written_result(o)
        if text is not None:
            pb.result.CopyFrom(
                rights_pb2.WrittenResult(text=text, audit_entry_id=o.answer_entry_id or "")
            )
        return pb


def _set_time(pb: rights_pb2.Objection, field: str, value: datetime | None) -> None:
    """A time that is not there stays unset, rather than the epoch."""
    if value is not None:
        getattr(pb, field).CopyFrom(convert.to_timestamp(value))


def _id(value: str, field: str) -> str:
    """A record or objection id: the gateway's own ids are at most 40 characters."""
    return convert.identifier(value, field, max_length=40)


def _states(values: Iterable[rights_pb2.Objection.State]) -> list[State]:
    """The states asked for; STATE_UNSPECIFIED, or a newer client's value, is no state."""
    try:
        return [_FROM_PB[v] for v in values]
    except KeyError as exc:
        raise InvalidArgument.field("states", f"not a state: {exc.args[0]}") from None
