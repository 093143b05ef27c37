"""Shared fixtures: database backends, a dev PKI, settings and a running gateway."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.configured import configured_harness
from support.databases import backends, empty, fresh_database
from support.harness import Clock, Harness, start_harness

from credit_gateway.adapters.storage.db import Database, make_engine
from credit_gateway.devpki import pki


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that touches storage runs once per configured backend.
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", backends(), scope="session")


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(backend, tmp_path_factory.mktemp(f"db-{backend}")) as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.connect(database_url)
    empty(database.engine)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture(scope="session")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    pki.init_pki(directory)
    return directory


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def harness(tmp_path: Path, certs_dir: Path, database_url: str, clock: Clock) -> Iterator[Harness]:
    engine = make_engine(database_url)
    empty(engine)
    engine.dispose()
    running = start_harness(tmp_path, certs_dir, database_url, clock)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def paused_harness(
    tmp_path: Path, certs_dir: Path, database_url: str, clock: Clock
) -> Iterator[Harness]:
    """A harness whose own audit integrator waits an hour: the test integrates when it means to."""
    with configured_harness(
        tmp_path, certs_dir, database_url, clock, audit_integrate_ms=3_600_000
    ) as h:
        yield h


@pytest.fixture
def no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """CREDIT_GATEWAY_* variables override --config: none may leak into a CLI run in a test."""
    for name in [n for n in os.environ if n.startswith("CREDIT_GATEWAY_")]:
        monkeypatch.delenv(name)
