"""One settings object, read from an optional TOML file and then the environment.

Precedence: defaults < file (`--config FILE` or CREDIT_GATEWAY_CONFIG) < CREDIT_GATEWAY_<NAME>
variables. `Settings.load` validates everything it can without I/O; `Settings.check_files` checks
that the files the server needs exist, so that `serve` fails in one line before it binds a port.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from credit_gateway.crypto.notes import COSIGNATURE_V1, ED25519, NoteError, Verifier
from credit_gateway.errors import ConfigError

ENV_PREFIX = "CREDIT_GATEWAY_"
_DRIVERS = {"sqlite", "postgresql", "postgresql+psycopg", "mysql+pymysql", "mariadb+pymysql"}


@dataclass(frozen=True, slots=True)
class WitnessPeer:
    """A witness our log asks to cosign (C2SP tlog-witness): its submission prefix (https), its
    cosignature verifier key, and the CA its TLS server certificate must chain to (None: the
    system's trust store)."""

    url: str
    vkey: str
    ca: Path | None = None

    @property
    def verifier(self) -> Verifier:
        return Verifier.from_vkey(self.vkey)


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path = Path("var")
    database_url: str = ""  # empty: SQLite in `home`
    certs_dir: Path = Path("certs")
    grpc_address: str = "127.0.0.1:50443"
    oauth_address: str = "127.0.0.1:50444"
    issuer: str = ""  # empty: https://<oauth_address>
    audience: str = "credit-gateway"
    access_token_ttl_seconds: int = 300
    clock_skew_seconds: int = 30
    max_message_bytes: int = 4 * 1024 * 1024
    max_stream_messages: int = 100_000
    processes: int = 1  # server processes sharing the ports, each with its own event loop
    db_threads: int = 8  # threads that run transactions; each keeps its database connection
    grpc_max_calls: int = 256  # unary calls admitted at once; more: RESOURCE_EXHAUSTED
    streams_per_caller: int = 8  # open streams of one method from one certificate
    streams_total: int = 5000  # open streams of one method in all
    stream_idle_seconds: int = 30  # longest wait for a client stream's next message
    stream_max_seconds: int = 3600  # longest a stream may stay open (the server's deadline)
    shutdown_grace_seconds: int = 10  # SIGTERM: calls in flight may finish within this
    # The token endpoint's bounds (auth/https.py says what each one stops); per process.
    oauth_handshake_seconds: int = 5
    oauth_header_seconds: int = 5
    oauth_body_seconds: int = 10
    oauth_idle_seconds: int = 15
    oauth_requests_per_connection: int = 100
    oauth_connections_per_address: int = 32
    oauth_max_connections: int = 512
    log_level: str = "INFO"
    # Prometheus text format at http://<metrics_address>/metrics. Off (empty) unless asked for:
    # plain HTTP without authentication, for a loopback or management interface only. With
    # processes > 1, process i listens on the port + i (each its own counters).
    metrics_address: str = ""
    # The audit log (adapters/storage/tlog.py). Its origin names it in every checkpoint; empty:
    # the issuer's host and port with /audit. Entries are integrated every audit_integrate_ms,
    # at most audit_batch at a time, and their bodies kept audit_retention_days (Art 19: 3 years).
    audit_origin: str = ""
    audit_integrate_ms: int = 1000
    audit_batch: int = 10_000
    audit_retention_days: int = 3 * 365
    # Witnesses (C2SP tlog-witness). As a witness of peers' logs: our cosignature key's name
    # (empty: the issuer's host and port with /witness) and the logs we cosign, each named by its
    # verifier key (a log's key is named after its origin). As a log: the witnesses asked to
    # cosign each new checkpoint, each answering within witness_timeout_seconds.
    witness_name: str = ""
    witnessed_logs: tuple[str, ...] = ()
    witnesses: tuple[WitnessPeer, ...] = ()
    witness_timeout_seconds: int = 5
    # Exchange (ExchangeService). The change feed is read every feed_poll_ms, at most feed_batch
    # changes a message; a subscriber with nothing new gets a heartbeat every
    # feed_heartbeat_seconds; changes are kept feed_retention_days (an older cursor is refused:
    # resynchronise with PullRecords). A pull names at most pull_max_subjects subjects.
    feed_poll_ms: int = 200
    feed_batch: int = 500
    feed_heartbeat_seconds: int = 10
    feed_retention_days: int = 30
    pull_max_subjects: int = 100
    # Outbound delivery to peers: an entry is tried outbox_max_attempts times, the waits
    # between growing from outbox_backoff_ms to outbox_backoff_max_ms (doubling, with jitter),
    # then dead-lettered (`outbox retry` sends it again). A worker holds its partition's lease
    # outbox_lease_seconds, renewing it while it works; each send waits peer_timeout_seconds.
    outbox_max_attempts: int = 8
    outbox_backoff_ms: int = 500
    outbox_backoff_max_ms: int = 60_000
    outbox_lease_seconds: int = 15
    outbox_poll_ms: int = 500
    outbox_batch: int = 200
    peer_timeout_seconds: int = 10
    # The time rules (services/maintain.py: objections suspended, disclosure periods ended,
    # consents expired, audit bodies and feed changes past retention) are applied every
    # maintain_interval_seconds by the one replica holding the lease "maintain" (it lasts three
    # intervals, renewed at each run: a replica that stops is replaced within them).
    maintain_interval_seconds: int = 300

    # Derived paths ---------------------------------------------------------------------------
    @property
    def ca_cert(self) -> Path:
        return self.certs_dir / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.certs_dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.certs_dir / "server.key"

    @property
    def master_key_file(self) -> Path:
        return self.home / "master.key"

    @property
    def operator_key_file(self) -> Path:
        return self.home / "operator.key"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'gateway.db'}"

    @property
    def effective_issuer(self) -> str:
        return self.issuer or f"https://{self.oauth_address}"

    @property
    def effective_audit_origin(self) -> str:
        return self.audit_origin or self.effective_issuer.split("://", 1)[-1].rstrip("/") + "/audit"

    @property
    def effective_witness_name(self) -> str:
        return (
            self.witness_name or self.effective_issuer.split("://", 1)[-1].rstrip("/") + "/witness"
        )

    @property
    def witnessed_log_keys(self) -> dict[str, Verifier]:
        """The logs we witness, by origin."""
        keys = (Verifier.from_vkey(vkey) for vkey in self.witnessed_logs)
        return {key.name: key for key in keys}

    def for_process(self, index: int) -> Settings:
        """The settings of server process `index` of `processes`: its own metrics port."""
        if not self.metrics_address:
            return self
        host, port = _parse_address("metrics_address", self.metrics_address)
        return dataclasses.replace(self, metrics_address=_join(host, port + index))

    # Loading ---------------------------------------------------------------------------------
    @classmethod
    def load(
        cls, file: Path | None = None, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        file = file or (
            Path(environ[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in environ else None
        )
        if file is not None:
            try:
                values.update(tomllib.loads(file.read_text()))
            except OSError as exc:
                raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in fields:
            if ENV_PREFIX + name.upper() in environ:
                values[name] = environ[ENV_PREFIX + name.upper()]
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}")
        typed = {name: _coerce(name, fields[name].type, value) for name, value in values.items()}
        settings = cls(**typed)
        settings._validate()
        return settings

    def replaced(self, **changes: Any) -> Settings:
        """These settings with some changed (a command line flag), validated again."""
        settings = dataclasses.replace(self, **changes)
        settings._validate()
        return settings

    def _validate(self) -> None:
        for name in ("grpc_address", "oauth_address"):
            _parse_address(name, getattr(self, name))
        if self.metrics_address:
            self._validate_metrics()
        try:
            url = make_url(self.effective_database_url)
        except ArgumentError as exc:
            raise ConfigError(f"database_url is not a database URL: {self.database_url!r}") from exc
        if url.drivername not in _DRIVERS:
            raise ConfigError(
                f"database_url driver {url.drivername!r} is not supported "
                f"(use one of {', '.join(sorted(_DRIVERS))})"
            )
        for name in (
            "access_token_ttl_seconds",
            "max_message_bytes",
            "max_stream_messages",
            "processes",
            "db_threads",
            "grpc_max_calls",
            "streams_per_caller",
            "streams_total",
            "stream_idle_seconds",
            "stream_max_seconds",
            "oauth_handshake_seconds",
            "oauth_header_seconds",
            "oauth_body_seconds",
            "oauth_idle_seconds",
            "oauth_requests_per_connection",
            "oauth_connections_per_address",
            "oauth_max_connections",
            "audit_integrate_ms",
            "audit_batch",
            "audit_retention_days",
            "witness_timeout_seconds",
            "feed_poll_ms",
            "feed_batch",
            "feed_heartbeat_seconds",
            "feed_retention_days",
            "pull_max_subjects",
            "outbox_max_attempts",
            "outbox_backoff_ms",
            "outbox_backoff_max_ms",
            "outbox_lease_seconds",
            "outbox_poll_ms",
            "outbox_batch",
            "peer_timeout_seconds",
            "maintain_interval_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if not 1 <= self.processes <= 64:
            raise ConfigError("processes must be between 1 and 64")
        origin = self.effective_audit_origin
        if not origin or "+" in origin or any(c.isspace() for c in origin):
            # It is the log key's name too (C2SP signed-note): no spaces, no '+'.
            raise ConfigError(f"audit_origin {origin!r} may hold no spaces and no '+'")
        self._validate_witnesses()
        if self.processes > 1 and _parse_address("grpc_address", self.grpc_address)[1] == 0:
            raise ConfigError("processes > 1 needs a fixed grpc_address port to share")
        if self.shutdown_grace_seconds < 0:
            raise ConfigError("shutdown_grace_seconds must not be negative")
        if not 0 <= self.clock_skew_seconds <= 300:
            raise ConfigError("clock_skew_seconds must be between 0 and 300")

    def _validate_witnesses(self) -> None:
        name = self.effective_witness_name
        if "+" in name or any(c.isspace() for c in name):
            raise ConfigError(f"witness_name {name!r} may hold no spaces and no '+'")
        origins: set[str] = set()
        for i, vkey in enumerate(self.witnessed_logs):
            key = _verifier(f"witnessed_logs[{i}]", vkey, ED25519, "a log's Ed25519 (0x01) key")
            if key.name in origins:
                raise ConfigError(f"witnessed_logs[{i}]: a second key for the log {key.name!r}")
            origins.add(key.name)
        urls: set[str] = set()
        for i, peer in enumerate(self.witnesses):
            where = f"witnesses[{i}]"
            _verifier(f"{where}.vkey", peer.vkey, COSIGNATURE_V1, "a cosignature (0x04) key")
            if not peer.url.startswith("https://") or any(c.isspace() for c in peer.url):
                raise ConfigError(f"{where}.url must be an https:// URL, got {peer.url!r}")
            if peer.url in urls:
                raise ConfigError(f"{where}.url {peer.url!r} is named twice")
            urls.add(peer.url)

    def _validate_metrics(self) -> None:
        _, port = _parse_address("metrics_address", self.metrics_address)
        if self.processes > 1 and port == 0:
            raise ConfigError("processes > 1 needs a fixed metrics_address port (one per process)")
        ports = range(port, port + self.processes) if port else range(0)
        if ports and ports[-1] > 65535:
            raise ConfigError("metrics_address port + processes - 1 must be at most 65535")
        for name in ("grpc_address", "oauth_address"):
            taken = _parse_address(name, getattr(self, name))[1]
            if taken and taken in ports:
                raise ConfigError(f"metrics_address ports {ports[0]}-{ports[-1]} include {name}'s")

    def check_files(self) -> None:
        """The server's TLS material must exist before it starts."""
        for label, path in (
            ("CA certificate", self.ca_cert),
            ("server certificate", self.server_cert),
            ("server key", self.server_key),
            ("master key", self.master_key_file),
        ):
            if not path.is_file():
                raise ConfigError(f"{label} not found at {path} (run `credit-gateway init`)")
        for i, peer in enumerate(self.witnesses):
            if peer.ca is not None and not peer.ca.is_file():
                raise ConfigError(f"witnesses[{i}].ca not found at {peer.ca}")


def _verifier(where: str, vkey: str, kind: int, what: str) -> Verifier:
    try:
        key = Verifier.from_vkey(vkey)
    except NoteError as exc:
        raise ConfigError(f"{where}: {exc.message}, got {vkey!r}") from exc
    if key.kind != kind:
        raise ConfigError(f"{where} must be {what}")
    return key


def _coerce(name: str, annotation: object, value: Any) -> Any:
    if str(annotation) == "tuple[str, ...]":
        return _strings(name, value)
    if str(annotation) == "tuple[WitnessPeer, ...]":
        return _peers(name, value)
    kind = {"Path": Path, "int": int, "str": str}[str(annotation)]
    # TOML gives typed values: int() would cut 2.5 to 2 and take true for 1.
    if kind is int and isinstance(value, bool | float):
        raise ConfigError(f"setting {name} must be {annotation!s}, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name} must be {annotation!s}, got {value!r}") from exc


def _strings(name: str, value: Any) -> tuple[str, ...]:
    """A TOML list of strings, or (a variable) the strings separated by whitespace or commas."""
    if isinstance(value, str):
        return tuple(value.replace(",", " ").split())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"setting {name} must be a list of strings, got {value!r}")


_PEER_KEYS = {"url", "vkey", "ca"}


def _peers(name: str, value: Any) -> tuple[WitnessPeer, ...]:
    """TOML tables ([[witnesses]] url, vkey, ca), or (a variable) the same as a JSON list."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"setting {name} must be a JSON list of tables: {exc}") from exc
    if not isinstance(value, list | tuple):
        raise ConfigError(f"setting {name} must be a list of tables, got {value!r}")
    peers = []
    for i, table in enumerate(value):
        if isinstance(table, WitnessPeer):
            peers.append(table)
            continue
        where = f"{name}[{i}]"
        if not isinstance(table, dict) or not {"url", "vkey"} <= table.keys() <= _PEER_KEYS:
            raise ConfigError(f"{where} must be a table of url, vkey and optionally ca")
        if not all(isinstance(v, str) and v for v in table.values()):
            raise ConfigError(f"{where}: url, vkey and ca are non-empty strings")
        ca = Path(table["ca"]) if "ca" in table else None
        peers.append(WitnessPeer(table["url"].rstrip("/"), table["vkey"], ca))
    return tuple(peers)


def _parse_address(name: str, address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name} must be HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_address(address: str) -> tuple[str, int]:
    return _parse_address("address", address)
