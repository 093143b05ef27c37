"""The `credit-gateway` command as an operator runs it: init, serve, bad configuration."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.harness import free_port

from credit_gateway.cli.main import main
from credit_gateway.devpki import pki
from credit_gateway.runtime import tls


def _run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "credit_gateway.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CREDIT_GATEWAY_HOME": str(tmp_path / "var"),
        "CREDIT_GATEWAY_CERTS_DIR": str(tmp_path / "certs"),
        "CREDIT_GATEWAY_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "CREDIT_GATEWAY_OAUTH_ADDRESS": f"127.0.0.1:{free_port()}",
    }


def test_init_is_idempotent(env: dict[str, str], tmp_path: Path) -> None:
    first = _run(["init"], env)
    assert first.returncode == 0, first.stderr
    assert "master key" in first.stdout
    ca = (tmp_path / "certs" / "ca.pem").read_bytes()
    master = (tmp_path / "var" / "master.key").read_bytes()
    second = _run(["init"], env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "init: already initialised"
    assert (tmp_path / "certs" / "ca.pem").read_bytes() == ca
    assert (tmp_path / "var" / "master.key").read_bytes() == master
    for key in ("var/master.key", "var/operator.key", "certs/ca.key", "certs/server.key"):
        assert (tmp_path / key).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        (
            "CREDIT_GATEWAY_DATABASE_URL",
            "nosuchdb://x",
            "database_url driver 'nosuchdb' is not supported",
        ),
        ("CREDIT_GATEWAY_DATABASE_URL", "::not a url::", "database_url is not a database URL"),
        ("CREDIT_GATEWAY_CERTS_DIR", "/nonexistent", "CA certificate not found"),
        ("CREDIT_GATEWAY_GRPC_ADDRESS", "localhost", "grpc_address must be HOST:PORT"),
        ("CREDIT_GATEWAY_DB_THREADS", "many", "setting db_threads must be int"),
        ("CREDIT_GATEWAY_GRPC_MAX_CALLS", "0", "grpc_max_calls must be positive"),
    ],
)
def test_serve_with_bad_config_exits_with_one_line(
    env: dict[str, str], setting: str, value: str, says: str
) -> None:
    assert _run(["init"], env).returncode == 0
    result = _run(["serve"], {**env, setting: value}, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert says in lines[0]


def test_serve_answers_health_and_drains_on_sigterm(env: dict[str, str], tmp_path: Path) -> None:
    assert _run(["init"], env).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "credit_gateway.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        certs = tmp_path / "certs"
        client = pki.issue_participant(certs, "ops-probe", "credit-agency")
        creds = tls.grpc_channel_credentials(certs / "ca.pem", client.cert_path, client.key_path)
        target = "localhost:" + env["CREDIT_GATEWAY_GRPC_ADDRESS"].rsplit(":", 1)[1]
        with grpc.secure_channel(target, creds) as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            status = (
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(), timeout=5)
                .status
            )
        assert status == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert time.monotonic() - started < 15
        _, stderr = process.communicate()
        assert '"msg": "draining"' in stderr
        assert '"msg": "stopped"' in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_unknown_config_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('grpc_adress = "127.0.0.1:1"\n')
    assert main(["--config", str(config), "db", "upgrade"]) == 2
    assert "unknown setting 'grpc_adress'" in capsys.readouterr().err
