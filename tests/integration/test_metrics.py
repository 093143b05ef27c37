"""The Prometheus endpoint end to end (issue #11 item 20): calls that succeed, are refused and
stream, and token endpoint requests, move the counters a scrape of `metrics_address` shows; no
label carries anything the caller sent (subject codes, participant ids, request ids, tokens,
method names it made up); with `serve --processes 2` each process serves its own counters on
its own port."""

from __future__ import annotations

import contextlib
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from support.configured import sqlite_harness
from support.harness import COMPANY, PERSON, Harness, free_port, make_agreement, metadata
from support.rpc import refusal
from support.scenario import punishment
from support.serving import serve
from support.waiting import wait_until

from credit_gateway import metrics
from credit_gateway.adapters.grpc.interceptor import UNKNOWN_METHOD
from credit_gateway.adapters.grpc.v1 import (
    common_pb2,
    discovery_pb2,
    discovery_pb2_grpc,
    inquiry_pb2,
    inquiry_pb2_grpc,
    submission_pb2_grpc,
)
from credit_gateway.auth.scopes import METHOD_SCOPES, PUBLIC_METHODS
from credit_gateway.errors import ConfigError

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
GET_CATALOG = "/credit_gateway.v1.DiscoveryService/GetCatalog"
LIST_AGREEMENTS = "/credit_gateway.v1.DiscoveryService/ListAgreements"
SUBMIT = "/credit_gateway.v1.SubmissionService/SubmitRecords"
QUERY_OPEN = "/credit_gateway.v1.InquiryService/QueryOpen"
WATCH = "/grpc.health.v1.Health/Watch"
CALLER_REQUEST_ID = "caller-chosen-request-id-7f3a"
MADE_UP_METHOD = f"/credit_gateway.v1.Nope/{PERSON}"


@pytest.fixture
def h(tmp_path: Path, certs_dir: Path) -> Iterator[Harness]:
    """What is counted does not depend on the database: SQLite, once."""
    with sqlite_harness(tmp_path, certs_dir, metrics_address="127.0.0.1:0") as harness:
        yield harness


def page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return str(response.read().decode())


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def calls(found: Samples, method: str, code: str) -> float:
    return sample(found, "credit_gateway_grpc_calls_total", method=method, code=code)


def test_metrics_are_off_unless_configured(tmp_path: Path, certs_dir: Path) -> None:
    with sqlite_harness(tmp_path, certs_dir) as harness:
        assert harness.running.metrics_port is None


def test_the_page_is_at_metrics_only(h: Harness) -> None:
    assert (
        requests.get(f"http://127.0.0.1:{h.running.metrics_port}/", timeout=10).status_code == 404
    )


def test_a_metrics_address_that_cannot_be_bound_stops_the_start_in_one_line(
    tmp_path: Path, certs_dir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with (
            pytest.raises(ConfigError) as refused,
            sqlite_harness(tmp_path, certs_dir, metrics_address=address),
        ):
            pass
    assert refused.value.message.startswith(f"cannot listen on {address}: ")


def test_calls_refusals_streams_and_tokens_are_counted_and_no_label_is_the_callers(
    h: Harness,
) -> None:
    port = h.running.metrics_port
    assert port
    agency = h.add_participant("zx-credit", "credit-agency")
    provider = h.add_participant("hubei-amr", "providing-unit")
    make_agreement(h, agency, categories=("registration",))
    token = h.token(agency)
    before = samples(page(port))

    # A success, with a request id of the caller's choosing.
    discovery = discovery_pb2_grpc.DiscoveryServiceStub(agency.channel)
    discovery.GetCatalog(
        discovery_pb2.GetCatalogRequest(),
        metadata=(*metadata(token), ("x-request-id", CALLER_REQUEST_ID)),
        timeout=10,
    )
    # Refusals: no token; a query about a person the open channel does not serve.
    assert refusal(
        lambda: discovery.ListAgreements(discovery_pb2.ListAgreementsRequest(), timeout=10)
    ) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    inquiry = inquiry_pb2_grpc.InquiryServiceStub(agency.channel)
    with contextlib.suppress(grpc.RpcError):
        inquiry.QueryOpen(
            inquiry_pb2.QueryRequest(
                subject_code=PERSON,
                purpose="LOAN_APPROVAL",
                agreement_id=f"agr-{agency.id}",
                subject_kind=common_pb2.SUBJECT_KIND_NATURAL_PERSON,
            ),
            metadata=metadata(token),
            timeout=10,
        )
    # A client stream, answered.
    result = submission_pb2_grpc.SubmissionServiceStub(provider.channel).SubmitRecords(
        iter([punishment(provider, "metrics-1", h.clock.now)]),
        metadata=metadata(h.token(provider)),
        timeout=10,
    )
    assert result.accepted == 1
    # A method the caller made up, named after a subject.
    with pytest.raises(grpc.RpcError) as unknown:
        agency.channel.unary_unary(MADE_UP_METHOD)(b"", timeout=10)
    assert unknown.value.code() is grpc.StatusCode.UNIMPLEMENTED
    # The token endpoint: a key set fetched, a client that does not authenticate, a path that
    # is none of its endpoints.
    base, ca = f"https://localhost:{h.running.oauth_port}", str(h.settings.ca_cert)
    assert requests.get(f"{base}/jwks.json?who={COMPANY}", verify=ca, timeout=10).status_code == 200
    token_status = requests.post(
        f"{base}/token",
        data={"grant_type": "client_credentials", "client_id": agency.id},
        verify=ca,
        timeout=10,
    ).status_code
    assert token_status in (400, 401)
    assert requests.get(f"{base}/{PERSON}", verify=ca, timeout=10).status_code == 404

    # A stream open while the page is read: counted by its method.
    watch = health_pb2_grpc.HealthStub(agency.channel).Watch(
        health_pb2.HealthCheckRequest(), timeout=30
    )
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    try:
        during = samples(page(port))
    finally:
        watch.cancel()
    assert sample(during, metrics.OPEN_STREAMS, method=WATCH) >= 1
    assert sample(during, metrics.DB_THREADS, pool="calls") >= h.settings.db_threads
    assert sample(during, metrics.ADMISSION_SLOTS, pool="calls") >= h.settings.grpc_max_calls

    wait_until(
        lambda: calls(samples(page(port)), WATCH, "CANCELLED") > calls(before, WATCH, "CANCELLED"),
        10,
        "for the cancelled watch to be counted",
    )
    after_text = page(port)
    after = samples(after_text)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("credit_gateway_grpc_calls_total", method=GET_CATALOG, code="OK") == 1
    assert moved("credit_gateway_grpc_call_seconds_count", method=GET_CATALOG) == 1
    assert moved("credit_gateway_grpc_calls_total", method=LIST_AGREEMENTS, code="UNAUTHENTICATED")
    assert moved("credit_gateway_refusals_total", method=LIST_AGREEMENTS, reason="TOKEN_MISSING")
    assert (
        moved("credit_gateway_grpc_calls_total", method=QUERY_OPEN, code="OK")
        + sum(
            moved("credit_gateway_refusals_total", method=QUERY_OPEN, reason=r)
            for (name, labels) in after
            if name == "credit_gateway_refusals_total" and ("method", QUERY_OPEN) in labels
            for r in [dict(labels)["reason"]]
        )
        == 1
    )
    assert moved("credit_gateway_grpc_calls_total", method=SUBMIT, code="OK") == 1
    assert moved("credit_gateway_grpc_call_seconds_count", method=SUBMIT) == 1
    assert moved("credit_gateway_grpc_calls_total", method=UNKNOWN_METHOD, code="UNIMPLEMENTED")
    assert moved("credit_gateway_oauth_requests_total", endpoint="/jwks.json", status="200") == 1
    assert (
        moved("credit_gateway_oauth_requests_total", endpoint="/token", status=str(token_status))
        == 1
    )
    assert moved("credit_gateway_oauth_requests_total", endpoint="other", status="404") == 1

    # No label value is anything a caller sent.
    for secret in (PERSON, COMPANY, agency.id, provider.id, CALLER_REQUEST_ID, token, "Nope"):
        assert secret not in after_text, secret
    known = {*METHOD_SCOPES, *PUBLIC_METHODS, UNKNOWN_METHOD}
    # What these calls moved (the registry is the process's: other tests' counts are in it too).
    for (name, labels), value in after.items():
        if before.get((name, labels)) == value:
            continue
        values = dict(labels)
        if "method" in values:
            assert values["method"] in known, (name, values)
        if "reason" in values and name == "credit_gateway_refusals_total":
            assert metrics.bounded_reason(values["reason"]) == values["reason"]


def _two_free_ports() -> int:
    """A port P with P + 1 free too (one per process)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free ports")


def test_each_process_serves_its_own_counters_on_its_own_port(h: Harness, tmp_path: Path) -> None:
    provider = h.add_participant("hubei-amr", "providing-unit")
    port = _two_free_ports()
    process = serve(
        h,
        tmp_path,
        env={"CREDIT_GATEWAY_PROCESSES": "2"},
        metrics_address=f"127.0.0.1:{port}",
    )
    channels = []
    try:
        process.wait_serving(provider)
        wait_until(lambda: len(process.children()) == 2, 30, "for the second child")

        def checks(text: str) -> float:
            return calls(samples(text), "/grpc.health.v1.Health/Check", "OK")

        wait_until(lambda: _answers(port) and _answers(port + 1), 30, "for both metrics ports")
        before = checks(page(port)) + checks(page(port + 1))
        channels = [process.channel(provider, own_connection=True) for _ in range(8)]
        for channel in channels:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        first, second = checks(page(port)), checks(page(port + 1))
        # Each process counts its own calls; together, every call once.
        assert first + second - before == len(channels)
    finally:
        for channel in channels:
            channel.close()
        process.close()


def _answers(port: int) -> bool:
    try:
        page(port)
    except OSError:
        return False
    return True
