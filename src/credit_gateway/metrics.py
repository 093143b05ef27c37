"""What the gateway counts, for Prometheus: one registry per process, rendered on demand.

Counters and histograms are prometheus_client's, incremented where things happen (the gRPC
interceptor, the token endpoint's server, storage's error translation): a few lock-protected
float additions per call, nothing more. What is a level rather than a count (admission slots in
use, open streams, database threads busy and queued) costs the calls nothing: it is read from
the objects that already hold it (`Source`s: grpc Limits, runtime Blocking) when a scrape asks.

Label values are never the caller's: methods are those the server registered, codes gRPC's,
reasons the gateway's own constants (and `bounded_reason` keeps even a wrong one from becoming
a label), endpoints and outcomes the token endpoint's own. No subject code, participant id,
certificate or request id is ever a label.

With `serve --processes N` every process has its own registry and its own listener (the
configured port plus the process's index; runtime/config.py), and Prometheus scrapes each as a
target of its own: no shared files, no lock between processes, and a level read at scrape time
is the process's own.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# No *_created series beside each counter: the page stays half as long.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, resident memory, open fds

# Up to 10 s: a release takes milliseconds; a stream's lifetime lands in the top buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRPC_CALLS = Counter(
    "credit_gateway_grpc_calls",
    "gRPC calls finished, by method and status code",
    ("method", "code"),
    registry=REGISTRY,
)
GRPC_SECONDS = Histogram(
    "credit_gateway_grpc_call_seconds",
    "Time from a call's arrival at the interceptor to its answer (a stream: its lifetime)",
    ("method",),
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
REFUSALS = Counter(
    "credit_gateway_refusals",
    "Calls refused to their caller, by method and the refusal's ErrorInfo reason",
    ("method", "reason"),
    registry=REGISTRY,
)
STORAGE_ERRORS = Counter(
    "credit_gateway_storage_errors",
    "Errors the database driver raised, by kind (a retried one counts each time)",
    ("kind",),
    registry=REGISTRY,
)
OAUTH_REQUESTS = Counter(
    "credit_gateway_oauth_requests",
    "Requests the token endpoint's server answered, by endpoint and HTTP status",
    ("endpoint", "status"),
    registry=REGISTRY,
)
OAUTH_CONNECTIONS_REFUSED = Counter(
    "credit_gateway_oauth_connections_refused",
    "Token endpoint connections closed before a request, by reason",
    ("reason",),
    registry=REGISTRY,
)

# The token endpoint's transport refusals (adapters/http/server.py).
OVER_CAPACITY = "over_capacity"
HANDSHAKE_FAILED = "handshake_failed"
HEADER_TIMEOUT = "header_timeout"

OTHER = "OTHER"
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
MAX_REASONS = 256  # the gateway has about a hundred; a bug cannot make the label unbounded
_reasons: set[str] = set()


def bounded_reason(reason: str) -> str:
    """The reason as a label value: the gateway's reasons are constants in its code; anything
    else (or any reason past MAX_REASONS distinct ones) is counted as OTHER."""
    if reason in _reasons:
        return reason
    if len(_reasons) >= MAX_REASONS or not _REASON.fullmatch(reason):
        return OTHER
    _reasons.add(reason)
    return reason


# --- levels, read at scrape time --------------------------------------------------------------

ADMISSION_IN_USE = "credit_gateway_grpc_admission_in_use"
ADMISSION_SLOTS = "credit_gateway_grpc_admission_slots"
OPEN_STREAMS = "credit_gateway_grpc_open_streams"
DB_THREADS = "credit_gateway_db_threads"
DB_THREADS_BUSY = "credit_gateway_db_threads_busy"
DB_JOBS_QUEUED = "credit_gateway_db_jobs_queued"

# name -> (help, label names): every gauge a Source may report.
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    ADMISSION_IN_USE: (
        "Admission slots held by unary calls now (pool: calls, or health checks' own)",
        ("pool",),
    ),
    ADMISSION_SLOTS: ("Admission slots there are, by pool", ("pool",)),
    OPEN_STREAMS: ("Streams open now, by method", ("method",)),
    DB_THREADS: ("Database threads, by pool (calls, streams)", ("pool",)),
    DB_THREADS_BUSY: ("Database threads running a job now, by pool", ("pool",)),
    DB_JOBS_QUEUED: ("Jobs waiting for a database thread now, by pool", ("pool",)),
}

Sample = tuple[str, tuple[str, ...], float]


class Source(Protocol):
    def metric_samples(self) -> Iterable[Sample]:
        """(gauge name from GAUGES, label values, value) for each level it holds."""
        ...


class _Levels(Collector):
    """Sums the levels of every source this process serves (one gateway in production; the
    tests run several in one process)."""

    def __init__(self) -> None:
        # By identity: a source is often a dataclass, equal to another and unhashable.
        self.sources: weakref.WeakValueDictionary[int, Source] = weakref.WeakValueDictionary()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        totals: dict[tuple[str, tuple[str, ...]], float] = {}
        for source in list(self.sources.values()):
            for name, labels, value in source.metric_samples():
                totals[name, labels] = totals.get((name, labels), 0.0) + value
        for name, (text, label_names) in GAUGES.items():
            family = GaugeMetricFamily(name, text, labels=label_names)
            for (found, labels), value in sorted(totals.items()):
                if found == name:
                    family.add_metric(labels, value)
            yield family


_levels = _Levels()
REGISTRY.register(_levels)


def watch(*sources: Source) -> None:
    """Report these sources' levels until unwatched (or collected)."""
    for source in sources:
        _levels.sources[id(source)] = source


def unwatch(*sources: Source) -> None:
    for source in sources:
        if _levels.sources.get(id(source)) is source:
            del _levels.sources[id(source)]


def render() -> tuple[bytes, str]:
    """The Prometheus text format and its content type. Call it on the event loop: the levels
    are read from counters only the loop changes."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
