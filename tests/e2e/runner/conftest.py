"""Real servers for the backup runner's tests, one of each per session on free loopback ports:
PostgreSQL and MariaDB from Debian's packages (hack/install-test-deps.sh), MinIO built from its
Go module (hack/build-minio.sh, cached)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from runbook_operator.devcluster.services import MariaDBServer, MinioServer, PostgresServer

S = TypeVar("S", PostgresServer, MariaDBServer, MinioServer)
START_TIMES = pytest.StashKey[dict[str, float]]()


def _started(server: S, request: pytest.FixtureRequest) -> S:
    started = time.monotonic()
    server.start()
    request.config.stash.setdefault(START_TIMES, {})[type(server).__name__] = (
        time.monotonic() - started
    )
    return server


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    server = _started(PostgresServer(), request)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb(request: pytest.FixtureRequest) -> Iterator[MariaDBServer]:
    server = _started(MariaDBServer(), request)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def minio(request: pytest.FixtureRequest) -> Iterator[MinioServer]:
    server = _started(MinioServer(), request)
    yield server
    server.stop()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names that never collide between tests sharing a session's servers."""
    return lambda stem: f"{stem}_{uuid.uuid4().hex[:8]}"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    times = config.stash.get(START_TIMES, {})
    if times:
        terminalreporter.write_line(
            "test services started in: "
            + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in sorted(times.items()))
        )
