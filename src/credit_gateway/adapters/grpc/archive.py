"""ArchiveService (Art 30-31): restoration decisions from providing units, deletions on a
subject's application."""

from __future__ import annotations

from credit_gateway.adapters.grpc.v1 import rights_pb2_grpc
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway


class ArchiveServicer(rights_pb2_grpc.ArchiveServiceServicer):
    def __init__(self, gateway: Gateway, blocking: Blocking) -> None:
        self.gateway = gateway
        self.blocking = blocking
