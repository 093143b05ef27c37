"""`credit-gateway serve` with `processes = 2` (issue "One event loop"): two children, each a
whole gateway on its own loop, share the fixed port; the kernel spreads connections over them;
each answers authenticated calls; SIGTERM to the parent drains both and it exits 0."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.configured import sqlite_harness
from support.harness import Harness
from support.scenario import punishment, stored_record_ids
from support.serving import SERVING, serve
from support.waiting import wait_until

from credit_gateway.adapters.grpc.v1 import submission_pb2_grpc

CONNECTIONS = 16  # all on one child by chance: 2 ** -15
GRACE = 2


def established(pid: int, port: int) -> int:
    """How many TCP connections to `port` process `pid` holds (its socket descriptors, found
    in the kernel's connection table)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            local_port, state, inode = int(cols[1].rsplit(":", 1)[1], 16), cols[3], cols[9]
            count += local_port == port and state == "01" and inode in inodes  # 01: ESTABLISHED
    return count


@pytest.fixture
def harness_on_sqlite(tmp_path: Path, certs_dir: Path) -> Iterator[Harness]:
    """Sharing the port does not depend on the database: SQLite, once (two processes on one
    SQLite file is what a small installation runs)."""
    with sqlite_harness(tmp_path, certs_dir) as h:
        yield h


def test_two_processes_share_the_port_answer_and_drain_on_sigterm(
    harness_on_sqlite: Harness, tmp_path: Path
) -> None:
    h = harness_on_sqlite
    provider = h.add_participant("hubei-amr", "providing-unit")
    process = serve(
        h, tmp_path, env={"CREDIT_GATEWAY_PROCESSES": "2"}, shutdown_grace_seconds=GRACE
    )
    channels = []
    try:
        process.wait_serving(provider)
        # The parent answers health once one child serves; the other may still be starting.
        wait_until(lambda: len(process.children()) == 2, 30, "for the second child")
        children = process.children()
        assert len(children) == 2, children

        md = process.token(provider)
        channels = [process.channel(provider, own_connection=True) for _ in range(CONNECTIONS)]
        for i, channel in enumerate(channels):
            check = health_pb2_grpc.HealthStub(channel).Check
            assert check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
            # Each child authenticates against the shared database and writes to it.
            result = submission_pb2_grpc.SubmissionServiceStub(channel).SubmitRecords(
                iter([punishment(provider, f"via-{i}", h.clock.now)]), metadata=md, timeout=10
            )
            assert result.accepted == 1
        held = {pid: established(pid, process.port) for pid in children}
        print(f"connections per child: {held}")
        assert sum(held.values()) == CONNECTIONS, held
        assert all(held.values()), f"one child holds every connection: {held}"
        assert len(stored_record_ids(h.db)) == CONNECTIONS
        for channel in channels:
            channel.close()
        took = process.terminate()
    finally:
        for channel in channels:
            channel.close()
        process.close()
    assert took < GRACE + 5
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    # The parent and each child say so.
    assert len(process.logged("draining")) == 3
    assert len(process.logged("stopped")) == 3


def test_processes_that_cannot_listen_stop_the_parent_with_one_line(
    harness_on_sqlite: Harness, tmp_path: Path
) -> None:
    """A child that cannot start (here: the port is taken) is not started again and again: the
    parent stops the others and exits 2 with one line, as a single process does."""
    h = harness_on_sqlite
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = serve(
            h, tmp_path, env={"CREDIT_GATEWAY_PROCESSES": "2"}, grpc_address=f"127.0.0.1:{port}"
        )
        try:
            code = process.process.wait(timeout=30)
        finally:
            process.close()
    output = process.output()
    assert code == 2, output
    assert output.splitlines()[-1] == f"credit-gateway: error: cannot listen on 127.0.0.1:{port}"
    assert "Traceback" not in output
    assert not process.logged("process died")
