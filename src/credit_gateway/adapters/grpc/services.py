"""Which servicers the gateway serves."""

from __future__ import annotations

import grpc

from credit_gateway.adapters.grpc.archive import ArchiveServicer
from credit_gateway.adapters.grpc.audit import AuditServicer
from credit_gateway.adapters.grpc.consent import ConsentServicer
from credit_gateway.adapters.grpc.discovery import DiscoveryServicer
from credit_gateway.adapters.grpc.exchange import ExchangeServicer
from credit_gateway.adapters.grpc.inquiry import InquiryServicer
from credit_gateway.adapters.grpc.objections import ObjectionServicer
from credit_gateway.adapters.grpc.submission import SubmissionServicer
from credit_gateway.adapters.grpc.v1 import (
    audit_pb2_grpc,
    consent_pb2_grpc,
    discovery_pb2_grpc,
    exchange_pb2_grpc,
    inquiry_pb2_grpc,
    rights_pb2_grpc,
    submission_pb2_grpc,
)
from credit_gateway.adapters.grpc.watch import ConsentEventHub
from credit_gateway.consent.service import ConsentService
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.release import InquiryService
from credit_gateway.services.submission import SubmissionService


def register_services(
    server: grpc.aio.Server, gateway: Gateway, blocking: Blocking, hub: ConsentEventHub
) -> tuple[str, ...]:
    """Adds every servicer to the server; returns their full service names."""
    inquiry = InquiryService(gateway)
    inquiry_pb2_grpc.add_InquiryServiceServicer_to_server(
        InquiryServicer(inquiry, blocking), server
    )
    submission = SubmissionService(gateway)
    submission_pb2_grpc.add_SubmissionServiceServicer_to_server(
        SubmissionServicer(submission, blocking, gateway.settings.max_stream_messages), server
    )
    consent_pb2_grpc.add_ConsentServiceServicer_to_server(
        ConsentServicer(ConsentService(gateway), blocking, hub), server
    )
    discovery_pb2_grpc.add_DiscoveryServiceServicer_to_server(
        DiscoveryServicer(gateway, blocking), server
    )
    audit_pb2_grpc.add_AuditServiceServicer_to_server(
        AuditServicer(gateway.audit, blocking), server
    )
    exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(
        ExchangeServicer(gateway, blocking, inquiry), server
    )
    rights_pb2_grpc.add_ObjectionServiceServicer_to_server(
        ObjectionServicer(gateway, blocking, submission), server
    )
    rights_pb2_grpc.add_ArchiveServiceServicer_to_server(ArchiveServicer(gateway, blocking), server)
    return (
        "credit_gateway.v1.InquiryService",
        "credit_gateway.v1.SubmissionService",
        "credit_gateway.v1.ConsentService",
        "credit_gateway.v1.DiscoveryService",
        "credit_gateway.v1.AuditService",
        "credit_gateway.v1.ExchangeService",
        "credit_gateway.v1.ObjectionService",
        "credit_gateway.v1.ArchiveService",
    )
