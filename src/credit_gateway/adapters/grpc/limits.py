"""Admission: how many calls and streams the gateway holds at once, so nobody starves anybody.

Unary calls and streams are counted apart. Unary calls share `grpc_max_calls` slots; a stream
takes a slot of its method for its client certificate (a caller) and one of its method's slots
in all, for as long as it stays open. Over any of them the call is refused at once with
RESOURCE_EXHAUSTED and a reason, before authentication, so a certificate that is unregistered,
suspended or without a token is bounded like any other. Counters only: everything here runs on
the event loop's one thread, so no lock is needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from credit_gateway import metrics
from credit_gateway.errors import ResourceExhausted
from credit_gateway.runtime.config import Settings

# Methods whose streams cost more than their slot: each watch reads the database as it runs.
PER_CALLER_OVERRIDES: Mapping[str, int] = {
    "/credit_gateway.v1.ConsentService/WatchConsents": 2,
}


HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_SLOTS = 64


@dataclass
class Limits:
    max_unary: int
    streams_per_caller: int
    streams_total: int
    stream_idle_seconds: float
    stream_max_seconds: float
    per_caller_overrides: Mapping[str, int] = field(
        default_factory=lambda: dict(PER_CALLER_OVERRIDES)
    )
    _unary: int = 0
    _health: int = 0
    _by_caller: Counter[tuple[str, str]] = field(default_factory=Counter)
    _by_method: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_unary=settings.grpc_max_calls,
            streams_per_caller=settings.streams_per_caller,
            streams_total=settings.streams_total,
            stream_idle_seconds=float(settings.stream_idle_seconds),
            stream_max_seconds=float(settings.stream_max_seconds),
        )

    @contextmanager
    def unary(self, method: str) -> Iterator[None]:
        # Health checks have slots of their own: a liveness probe must answer while calls
        # fill theirs (it touches no database, so its slots cost nothing to hold).
        health = method == HEALTH_CHECK
        if (self._health if health else self._unary) >= (
            HEALTH_SLOTS if health else self.max_unary
        ):
            raise ResourceExhausted("the server is at its limit of calls", reason="SERVER_BUSY")
        if health:
            self._health += 1
        else:
            self._unary += 1
        try:
            yield
        finally:
            if health:
                self._health -= 1
            else:
                self._unary -= 1

    @contextmanager
    def stream(self, method: str, caller: str) -> Iterator[None]:
        key = (method, caller)
        per_caller = self.per_caller_overrides.get(method, self.streams_per_caller)
        if self._by_caller[key] >= per_caller:
            raise ResourceExhausted(
                f"at most {per_caller} open streams of this method per client certificate",
                reason="STREAM_LIMIT",
            )
        if self._by_method[method] >= self.streams_total:
            raise ResourceExhausted(
                "the server holds its limit of streams of this method", reason="SERVER_BUSY"
            )
        self._by_caller[key] += 1
        self._by_method[method] += 1
        try:
            yield
        finally:
            self._by_method[method] -= 1
            self._by_caller[key] -= 1
            if not self._by_caller[key]:
                del self._by_caller[key]

    @property
    def unary_calls(self) -> int:
        return self._unary

    def open_streams(self) -> int:
        return sum(self._by_method.values())

    def metric_samples(self) -> Iterable[metrics.Sample]:
        """The slots in use and the open streams, as a scrape reads them (on the loop)."""
        yield metrics.ADMISSION_IN_USE, ("calls",), self._unary
        yield metrics.ADMISSION_IN_USE, ("health",), self._health
        yield metrics.ADMISSION_SLOTS, ("calls",), self.max_unary
        yield metrics.ADMISSION_SLOTS, ("health",), HEALTH_SLOTS
        for method, count in self._by_method.items():
            yield metrics.OPEN_STREAMS, (method,), count
