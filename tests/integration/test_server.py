"""The server itself: mutual TLS, health, reflection, message limits (issue: foundation)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.harness import Harness

from credit_gateway.devpki import pki


def _check(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_participant_with_certificate_gets_serving(harness: Harness) -> None:
    agency = harness.add_participant("agency-health", "credit-agency")
    assert _check(agency.channel) == health_pb2.HealthCheckResponse.SERVING


def test_every_gateway_service_reports_serving(harness: Harness) -> None:
    agency = harness.add_participant("agency-health", "credit-agency")
    stub = health_pb2_grpc.HealthStub(agency.channel)
    for service in (
        "credit_gateway.v1.InquiryService",
        "credit_gateway.v1.ConsentService",
        "credit_gateway.v1.SubmissionService",
        "credit_gateway.v1.DiscoveryService",
        "credit_gateway.v1.AuditService",
    ):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_client_without_certificate_fails_the_handshake(harness: Harness) -> None:
    with harness.channel(None) as channel, pytest.raises(grpc.RpcError) as refused:
        _check(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_certified_by_another_ca_fails_the_handshake(
    harness: Harness, tmp_path: Path
) -> None:
    foreign = pki.issue_foreign_ca_client(tmp_path, "intruder")
    with harness.channel(foreign) as channel, pytest.raises(grpc.RpcError) as refused:
        _check(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_reflection_lists_the_services(harness: Harness) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    agency = harness.add_participant("agency-health", "credit-agency")
    stub = reflection_pb2_grpc.ServerReflectionStub(agency.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    response = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
    names = {s.name for s in response.list_services_response.service}
    assert {
        "credit_gateway.v1.InquiryService",
        "credit_gateway.v1.DiscoveryService",
        "credit_gateway.v1.AuditService",
        "grpc.health.v1.Health",
    } <= names


def test_unknown_method_is_unimplemented(harness: Harness) -> None:
    agency = harness.add_participant("agency-health", "credit-agency")
    call = agency.channel.unary_unary("/credit_gateway.v1.Nope/Nothing")
    with pytest.raises(grpc.RpcError) as refused:
        call(b"", timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
