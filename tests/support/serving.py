"""`credit-gateway serve` as the operator runs it: a subprocess on the harness's database, home
and certificates, with real ports, signals and exit status. Tokens come from an issuer over the
same database's keys (the process runs on the real clock and names a fixed issuer)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.harness import Harness, Participant, free_port

from credit_gateway.auth.scopes import SCOPES_BY_KIND, PrincipalKind
from credit_gateway.devpki.pki import ParticipantKind
from credit_gateway.runtime import tls
from credit_gateway.runtime.config import Settings
from credit_gateway.runtime.gateway import Gateway, utcnow

ISSUER = "https://credit-gateway.test"
START_SECONDS = 30


@dataclass
class ServeProcess:
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path
    _minter: Gateway | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.settings.grpc_address.rsplit(":", 1)[1])

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"

    def channel(self, participant: Participant, *, own_connection: bool = False) -> grpc.Channel:
        """A channel with the participant's certificate. Channels to one target share their
        connection unless `own_connection` (grpc's process-wide subchannel pool)."""
        cert = participant.cert
        credentials = tls.grpc_channel_credentials(
            self.settings.ca_cert, cert.cert_path, cert.key_path
        )
        options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
        return grpc.secure_channel(self.target, credentials, options=options)

    def children(self) -> list[int]:
        """The pids of the gateway processes this one started (multiprocessing's spawned
        children: not its resource tracker)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue  # ended meanwhile
            if int(fields[1]) == self.process.pid and b"spawn_main" in cmdline:
                found.append(int(stat.parent.name))
        return sorted(found)

    def token(self, participant: Participant) -> tuple[tuple[str, str]]:
        """Bearer metadata for `participant`, with every scope of its kind."""
        if self._minter is None:
            self._minter = Gateway(self.settings)
        token, _ = self._minter.token_issuer.issue(
            client_id=participant.id,
            subject=participant.id,
            kind=PrincipalKind.PARTICIPANT,
            scopes=sorted(SCOPES_BY_KIND[ParticipantKind(participant.kind)]),
            cnf_x5t=participant.cert.x5t_s256,
            now=utcnow(),
        )
        return (("authorization", f"Bearer {token}"),)

    def wait_serving(self, probe: Participant) -> None:
        deadline = time.monotonic() + START_SECONDS
        with self.channel(probe) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            while True:
                assert self.process.poll() is None, self.output()
                try:
                    if check(health_pb2.HealthCheckRequest(), timeout=2).status == SERVING:
                        return
                except grpc.RpcError:
                    pass  # not listening yet
                assert time.monotonic() < deadline, "never served:\n" + self.output()
                time.sleep(0.1)

    def terminate(self) -> float:
        """SIGTERM; waits for the exit (which must be 0) and returns how long it took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        took = time.monotonic() - started
        assert code == 0, self.output()
        return took

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def logged(self, msg: str) -> list[dict[str, Any]]:
        """The JSON log lines whose msg is `msg`."""
        lines = (line for line in self.output().splitlines() if line.startswith("{"))
        return [entry for entry in map(json.loads, lines) if entry.get("msg") == msg]

    def close(self) -> None:
        """Kills the process and its children if the test did not stop them (the whole session
        it leads: a parent killed alone would leave its children serving); closes the token
        issuer."""
        with contextlib.suppress(ProcessLookupError):  # nothing left of it
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        if self._minter is not None:
            self._minter.close()
            self._minter = None


SERVING = health_pb2.HealthCheckResponse.SERVING


def serve(
    h: Harness, tmp: Path, *, env: dict[str, str] | None = None, **settings: Any
) -> ServeProcess:
    """Starts `credit-gateway serve` beside the harness (same home, certificates, database) on
    ports of its own, with `settings` in its config file and `env` in its environment."""
    values = {
        "home": str(h.settings.home),  # the same master key
        "certs_dir": str(h.settings.certs_dir),
        "database_url": h.settings.database_url,
        "grpc_address": f"127.0.0.1:{free_port()}",
        "oauth_address": f"127.0.0.1:{free_port()}",
        "issuer": ISSUER,
        **settings,
    }
    config = tmp / f"serve-{free_port()}.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    environ.update(env or {})
    log = config.with_suffix(".log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "credit_gateway.cli", "--config", str(config), "serve"],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for close()
        )
    return ServeProcess(Settings.load(config, environ={}), process, log)
