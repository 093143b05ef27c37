"""Wiring: settings -> storage -> services -> gRPC and the HTTPS token endpoint, on one loop.

Both servers run on one asyncio event loop per process: grpc.aio for the API, aiohttp for the
OAuth endpoint. Transactions run on the database threads of `blocking.Blocking`. `serve_forever`
runs one process; `serve_processes` runs N that share the ports (SO_REUSEPORT), each with its own
loop, all on one database. SIGTERM stops admission, lets calls finish within
`shutdown_grace_seconds`, then cancels what is left. With `metrics_address` set, each process
also serves its own Prometheus page there (process i on the port + i; credit_gateway.metrics).
With `witnessed_logs` the HTTPS listener also serves tlog-witness's /add-checkpoint; with
`witnesses` each new checkpoint is sent to them to cosign (services/witness.py), off the
integrator's path. The time rules (`maintain`) run on the replica holding their lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from credit_gateway import metrics
from credit_gateway.adapters.grpc import reflection
from credit_gateway.adapters.grpc.interceptor import GatewayInterceptor
from credit_gateway.adapters.grpc.limits import Limits
from credit_gateway.adapters.grpc.services import register_services
from credit_gateway.adapters.grpc.watch import ConsentEventHub
from credit_gateway.adapters.http import oauth
from credit_gateway.adapters.http.metrics import MetricsServer, serve_metrics
from credit_gateway.adapters.http.oauth import GatewayAuthorizationServer
from credit_gateway.adapters.http.server import AppHandle, HttpLimits, HttpsServer, serve_https
from credit_gateway.adapters.http.witness import (
    ADD_CHECKPOINT_PATH,
    WitnessEndpoint,
    WitnessTransport,
)
from credit_gateway.adapters.storage.trust import SqlTrustStore
from credit_gateway.crypto.notes import Note, NoteSignature
from credit_gateway.errors import ConfigError, GatewayError, NotFound
from credit_gateway.runtime import delivery, logs, tls
from credit_gateway.runtime.blocking import Blocking
from credit_gateway.runtime.config import Settings, split_address
from credit_gateway.runtime.gateway import Gateway
from credit_gateway.services.maintain import Maintenance
from credit_gateway.services.witness import Cosigning, Witness, WitnessClient, witness_signer

log = logging.getLogger("credit_gateway.runtime.server")
T = TypeVar("T")
Extra = Callable[[grpc.aio.Server, GatewayInterceptor], None]
KEEPALIVE_OPTIONS = (
    # Idle connections are closed and dead peers found, so neither holds memory for long.
    ("grpc.max_connection_idle_ms", 5 * 60_000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)


@dataclass
class Served:
    """One process's gateway, as its event loop holds it."""

    settings: Settings
    gateway: Gateway
    blocking: Blocking
    limits: Limits
    grpc_server: grpc.aio.Server
    port: int
    health: HealthServicer
    https: HttpsServer
    hub: ConsentEventHub
    metrics: MetricsServer | None = None
    cosigning: Cosigning | None = None
    witness_transport: WitnessTransport | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def oauth_port(self) -> int:
        return self.https.port

    @property
    def metrics_port(self) -> int | None:
        return self.metrics.port if self.metrics is not None else None

    async def stop(self, grace: float | None = None) -> None:
        """Stops admission at once (health says NOT_SERVING, the token endpoint closes, gRPC
        takes no new calls), lets the calls in flight finish within `grace`, cancels the rest,
        then waits for the transactions already handed to the database threads."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        for task in self.tasks:
            task.cancel()
        if self.cosigning is not None:
            await self.cosigning.stop()
        if self.witness_transport is not None:
            await self.witness_transport.close()
        # Together, not one after the other: gRPC must not go on admitting calls while the
        # token endpoint drains, and the two graces must not add up.
        await asyncio.gather(self.https.stop(grace=min(grace, 5.0)), self.grpc_server.stop(grace))
        # Scraped until the calls have drained: the last page shows how the drain went.
        if self.metrics is not None:
            await self.metrics.stop()
        metrics.unwatch(self.limits, self.blocking)
        self.hub.close()
        await asyncio.get_running_loop().run_in_executor(None, self.blocking.shutdown)
        self.gateway.close()


async def serve(
    settings: Settings, gateway: Gateway | None = None, extra: Extra | None = None
) -> Served:
    """Builds and starts the gateway on the running loop. `extra` may add handlers behind the
    same interceptor (the benchmark's authenticated echo uses it); production passes nothing."""
    settings.check_files()
    blocking = Blocking(settings.db_threads, max(2, settings.db_threads // 4))
    if gateway is None:
        gateway = await blocking.call(Gateway, settings)
    gateway.inline_key_refresh = False
    limits = Limits.from_settings(settings)
    interceptor = GatewayInterceptor(gateway, blocking, limits)
    size = settings.max_message_bytes
    server = grpc.aio.server(
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            # Two servers must not share a port by accident; --processes shares it on purpose.
            ("grpc.so_reuseport", 1 if settings.processes > 1 else 0),
            *KEEPALIVE_OPTIONS,
        ],
    )
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    hub = ConsentEventHub(gateway.db, blocking)
    names = register_services(server, gateway, blocking, hub)
    if extra is not None:
        extra(server, interceptor)
    for name in (*names, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable(server, (*names, health.SERVICE_NAME))
    # The token endpoint binds first: its port is configured, the gRPC one may be ephemeral.
    https = await _token_endpoint(settings, gateway, blocking, await _witness(gateway, blocking))
    try:
        port = server.add_secure_port(settings.grpc_address, tls.grpc_server_credentials(settings))
    except RuntimeError:
        port = 0
    if port == 0:
        await https.stop()
        raise ConfigError(f"cannot listen on {settings.grpc_address}")
    await server.start()
    served = Served(settings, gateway, blocking, limits, server, port, health_servicer, https, hub)
    metrics.watch(limits, blocking)
    try:
        served.metrics = await _metrics_endpoint(settings)
    except ConfigError:
        await served.stop(grace=0)
        raise
    served.tasks.append(asyncio.create_task(_follow_keys(gateway, blocking)))
    served.cosigning, served.witness_transport = _cosigning(settings, gateway, blocking)
    served.tasks.append(asyncio.create_task(_integrate(gateway, blocking, served.cosigning)))
    served.tasks.extend(delivery.start(gateway, blocking))  # the outbox's, to peer platforms
    served.tasks.append(asyncio.create_task(_maintain(gateway, blocking)))
    if gateway.db.dialect == "sqlite":
        served.tasks.append(asyncio.create_task(_checkpoint(gateway, blocking)))
    # What startup made (modules, the catalog, keys) lives as long as the process: kept out of
    # the collector's reach, a collection walks only what calls make.
    gc.freeze()
    log.info(
        "serving",
        extra={
            "fields": {
                "grpc_port": port,
                "oauth_port": https.port,
                "metrics_port": served.metrics_port,
                "issuer": settings.effective_issuer,
            }
        },
    )
    return served


async def _token_endpoint(
    settings: Settings, gateway: Gateway, blocking: Blocking, routes: dict[str, AppHandle]
) -> HttpsServer:
    """The OAuth 2.0 authorization server on HTTPS beside the gRPC port (issue: trust), and
    `routes` (the witness's) on the same listener."""
    app = GatewayAuthorizationServer(
        store=SqlTrustStore(gateway.db, gateway.clock),
        issuer=gateway.token_issuer,
        keyring=gateway.current_keyring,
        issuer_url=settings.effective_issuer,
        clock=gateway.clock,
    )
    host, port = split_address(settings.oauth_address)
    try:
        return await serve_https(
            app.handle,
            host,
            port,
            tls.https_server_context(settings),
            run=blocking.call,
            limits=HttpLimits(
                handshake_timeout=settings.oauth_handshake_seconds,
                header_timeout=settings.oauth_header_seconds,
                body_timeout=settings.oauth_body_seconds,
                idle_timeout=settings.oauth_idle_seconds,
                max_requests_per_connection=settings.oauth_requests_per_connection,
                max_connections_per_address=settings.oauth_connections_per_address,
                max_connections=settings.oauth_max_connections,
            ),
            reuse_port=settings.processes > 1,
            endpoints=OAUTH_ENDPOINTS,
            routes=routes,
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.oauth_address}: {exc.strerror}") from exc


# The token endpoint's paths, each counted under its own name (credit_gateway.metrics).
OAUTH_ENDPOINTS = (
    oauth.TOKEN_PATH,
    oauth.REVOKE_PATH,
    oauth.INTROSPECT_PATH,
    oauth.JWKS_PATH,
    oauth.METADATA_PATH,
)


async def _witness(gateway: Gateway, blocking: Blocking) -> dict[str, AppHandle]:
    """/add-checkpoint, if this gateway witnesses peers' logs; their rows made first."""
    settings = gateway.settings
    if not settings.witnessed_logs:
        return {}
    signer = witness_signer(gateway.master, settings.effective_witness_name)
    witness = Witness(gateway.db, signer, settings.witnessed_log_keys, gateway.clock)
    await blocking.call(witness.prepare)
    return {ADD_CHECKPOINT_PATH: WitnessEndpoint(witness).handle}


def _cosigning(
    settings: Settings, gateway: Gateway, blocking: Blocking
) -> tuple[Cosigning | None, WitnessTransport | None]:
    """The witnesses our log asks to cosign, each with a sender task of its own."""
    if not settings.witnesses:
        return None, None
    transport = WitnessTransport(settings.witness_timeout_seconds)
    audit = gateway.audit

    async def proof(old: int, new: int) -> list[bytes]:
        return (await blocking.call(audit.consistency, old, new))[1]

    async def store(size: int, signatures: list[NoteSignature]) -> None:
        await blocking.call(audit.add_cosignatures, size, signatures)

    clients = [
        WitnessClient(
            peer.url, peer.verifier, transport.poster(peer.url, tls.client_context(peer.ca)),
            proof, store,
        )
        for peer in settings.witnesses
    ]  # fmt: skip
    cosigning = Cosigning(clients)
    cosigning.start()
    return cosigning, transport


async def _metrics_endpoint(settings: Settings) -> MetricsServer | None:
    """The Prometheus page on `metrics_address`, if set: this process's own (never shared by
    SO_REUSEPORT, which would hand each scrape to any one process's counters)."""
    if not settings.metrics_address:
        return None
    host, port = split_address(settings.metrics_address)
    try:
        return await serve_metrics(host, port, metrics.render)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {settings.metrics_address}: {exc.strerror}") from exc


async def _follow_keys(gateway: Gateway, blocking: Blocking) -> None:
    """Follows `keys rotate` (made by the CLI or another replica) off the calls' path."""
    while True:
        await asyncio.sleep(Gateway.KEY_REFRESH_SECONDS)
        try:
            await blocking.call(gateway.refresh_keys)
        except Exception as error:  # a database blip: keep the keys we have, try again later
            log.error("key refresh failed", extra={"fields": {"error": str(error)}})


async def _integrate(
    gateway: Gateway, blocking: Blocking, cosigning: Cosigning | None = None
) -> None:
    """The audit log's integrator: every audit_integrate_ms, batches until nothing waits. One
    runs per process; the tree row's lock lets one batch through at a time across replicas.
    The newest checkpoint signed is offered to the witnesses, whose senders never hold it up."""
    pause = gateway.settings.audit_integrate_ms / 1000
    offered = 0
    while True:
        await asyncio.sleep(pause)
        try:
            while (done := await blocking.call(gateway.audit.integrate)) is not None:
                if done.note is not None and cosigning is not None:
                    cosigning.offer(done.size, done.note)
                    offered = max(offered, done.size)
                if done.quarantined:
                    log.error(
                        "audit entries quarantined: no valid MAC or leaf",
                        extra={"fields": {"seqs": list(done.quarantined)}},
                    )
                if done.added + len(done.quarantined) < gateway.audit.batch:
                    break
            if cosigning is not None:
                # A checkpoint this process did not sign (another replica's, `audit export`'s)
                # reaches the witnesses too.
                latest = await blocking.call(gateway.audit.checkpoint)
                if latest.size > offered:
                    cosigning.offer(latest.size, Note.parse(latest.note))
                    offered = latest.size
        except NotFound:
            pass  # no checkpoint yet: nothing to offer
        except Exception as error:  # a database blip or a racing replica: next time
            log.error("audit integration failed", extra={"fields": {"error": str(error)}})


async def _maintain(gateway: Gateway, blocking: Blocking) -> None:
    """The time rules (services/maintain.py), the change feed's retention among them, every
    maintain_interval_seconds, first one interval after start: one runner at a time across
    replicas, the one holding the lease "maintain" (taken for LEASE_INTERVALS intervals and
    renewed at each run, so another replica takes it only once it ran out)."""
    maintenance = Maintenance(gateway, delivery.holder_name())
    pause = gateway.settings.maintain_interval_seconds
    try:
        while True:
            await asyncio.sleep(pause)
            try:
                report = await blocking.call(maintenance.scheduled)
            except Exception as error:  # a database blip, a racing replica: next time
                log.error("maintain failed", extra={"fields": {"error": str(error)}})
                continue
            if report is not None and (report.moved or report.stopped):
                fields: dict[str, object] = {**report.counts, "stopped": report.stopped}
                log.info("maintained", extra={"fields": fields})
    finally:
        # Stopping: the lease given back at once rather than when it runs out, if the threads
        # still take work.
        try:
            await blocking.call(maintenance.release_lease)
        except (Exception, asyncio.CancelledError) as error:  # the threads stopped first
            log.info("maintain lease left to expire", extra={"fields": {"error": repr(error)}})


CHECKPOINT_SECONDS = 1.0


async def _checkpoint(gateway: Gateway, blocking: Blocking) -> None:
    """SQLite: the releases made on the loop leave checkpoints (which fsync) to this task."""
    while True:
        await asyncio.sleep(CHECKPOINT_SECONDS)
        try:
            await blocking.call(gateway.db.checkpoint)
        except Exception as error:  # a busy database: the next one catches up
            log.error("checkpoint failed", extra={"fields": {"error": str(error)}})


# --- one process ---------------------------------------------------------------------------


def serve_forever(settings: Settings, serving: Callable[[], None] | None = None) -> None:
    """Runs the gateway in this process until SIGTERM or SIGINT; `serving` is called once it
    listens."""
    asyncio.run(_serve_until_signalled(settings, serving))
    log.info("stopped")


async def _serve_until_signalled(
    settings: Settings, serving: Callable[[], None] | None = None
) -> None:
    served = await serve(settings)
    if serving is not None:
        serving()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stopping)
    await stopping.wait()
    await served.stop()


def _on_signal(signum: int, stopping: asyncio.Event) -> None:
    log.info("draining", extra={"fields": {"signal": signal.Signals(signum).name}})
    stopping.set()


# --- N processes ---------------------------------------------------------------------------

RESPAWN_SECONDS = 1.0
START_SECONDS = 120.0  # for every child to listen: each imports, connects, loads its keys


def serve_processes(settings: Settings) -> None:
    """`settings.processes` children, each a whole gateway on its own loop, sharing the ports.
    If one cannot start (a port taken, the database unreachable), none serves: the others are
    stopped and its error is raised here, as a single process would raise it. Once all serve, a
    child that dies is started again (at most once a second); SIGTERM goes to every child, and
    the parent returns when all have drained."""
    if settings.processes == 1:
        serve_forever(settings)
        return
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("draining", extra={"fields": {"signal": signal.Signals(signum).name}})
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children = [_Child.spawn(context, settings.for_process(i)) for i in range(settings.processes)]
    try:
        for child in children:
            child.wait_serving(stopping)
        while not stopping.wait(RESPAWN_SECONDS):
            for child in children:
                if not child.process.is_alive():
                    log.error("process died", extra={"fields": {"exitcode": child.exitcode}})
                    child.respawn()
    finally:
        for child in children:
            child.terminate()  # SIGTERM: the child drains like a single process
        for child in children:
            child.join()
    log.info("stopped")


@dataclass
class _Child:
    """A server process and the pipe on which it says whether it started."""

    context: multiprocessing.context.SpawnContext
    settings: Settings
    process: multiprocessing.context.SpawnProcess
    report: multiprocessing.connection.Connection

    @classmethod
    def spawn(cls, context: multiprocessing.context.SpawnContext, settings: Settings) -> _Child:
        report, sender = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(settings, sender), daemon=False)
        process.start()
        sender.close()  # the child's is the only write end: its exit ends the pipe
        return cls(context, settings, process, report)

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def wait_serving(self, stopping: threading.Event) -> None:
        """Returns once the child listens (or SIGTERM came); raises what stopped it."""
        deadline = time.monotonic() + START_SECONDS
        while not self.report.poll(0.1):
            if stopping.is_set():
                return
            if time.monotonic() > deadline:
                raise ConfigError(f"a server process did not start within {START_SECONDS:g} s")
        try:
            failure = self.report.recv()
        except EOFError:  # it died without a word: a crash, whose traceback is on stderr
            self.process.join()
            raise RuntimeError(f"a server process exited with {self.exitcode}") from None
        if failure is not None:
            raise ConfigError(failure)

    def respawn(self) -> None:
        self.report.close()
        fresh = self.spawn(self.context, self.settings)
        self.process, self.report = fresh.process, fresh.report

    def terminate(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()

    def join(self) -> None:
        self.process.join()
        self.report.close()


def _child(settings: Settings, report: multiprocessing.connection.Connection) -> None:
    logs.configure(settings.log_level)
    try:
        serve_forever(settings, serving=lambda: report.send(None))
    except GatewayError as error:
        # The parent says it (one line from the CLI) and stops the others.
        report.send(error.message)
        raise SystemExit(2) from None


# --- in another thread (tests, the benchmark) ----------------------------------------------

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    """One loop thread for every gateway started in this process by `start` (grpc.aio binds
    its completion queue to the first loop it runs on, so there is one)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="gateway-loop", daemon=True).start()
        return _loop


@dataclass
class RunningGateway:
    """A gateway served on the background loop, driven from ordinary threads."""

    served: Served
    loop: asyncio.AbstractEventLoop

    @property
    def gateway(self) -> Gateway:
        return self.served.gateway

    @property
    def port(self) -> int:
        return self.served.port

    @property
    def oauth_port(self) -> int:
        return self.served.oauth_port

    @property
    def limits(self) -> Limits:
        return self.served.limits

    @property
    def metrics_port(self) -> int | None:
        return self.served.metrics_port

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs a coroutine on the gateway's loop and waits for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self, grace: float | None = None) -> None:
        self.call(self.served.stop(grace))


def start(
    settings: Settings, gateway: Gateway | None = None, extra: Extra | None = None
) -> RunningGateway:
    loop = _background_loop()
    served = asyncio.run_coroutine_threadsafe(serve(settings, gateway, extra), loop).result()
    return RunningGateway(served, loop)
