"""ObjectionService (Art 29): subjects file objections on their records; providing units answer."""

from __future__ import annotations

from credit_gateway.adapters.grpc.v1 import rights_pb2_grpc
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.submission import SubmissionService


class ObjectionServicer(rights_pb2_grpc.ObjectionServiceServicer):
    def __init__(self, gateway: Gateway, blocking: Blocking, submission: SubmissionService) -> None:
        self.gateway = gateway
        self.blocking = blocking
        self.submission = submission
