"""Shared fixtures: real databases (SQLite files and PostgreSQL schemas), brokers and servers.

PostgreSQL: ORBITQ_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test). Each test
gets its own schema, dropped afterwards. When the server is unreachable the PostgreSQL variants
are skipped locally, but with CI=true they fail: CI must prove both databases.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from orbitq.services.broker import Broker, init_data_dir
from orbitq.services.clock import SimulatedClock
from orbitq.services.config import load_config
from orbitq.services.server import RunningServer, build_server

PG_URL = os.environ.get("ORBITQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EPOCH = datetime(2025, 12, 6, tzinfo=UTC)

# Property tests keep their example counts, but time is not what they test: on a loaded machine
# (CI's two workers, several suites at once) drawing an example or running one can take longer
# than Hypothesis's defaults allow, which would fail a correct property for being slow.
settings.register_profile("orbitq", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("orbitq")


@functools.cache
def _postgres_reachable() -> bool:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception:
        return False
    return True


def require_postgres() -> None:
    """Skip the calling PostgreSQL test when no server answers locally; with CI=true, fail."""
    if not _postgres_reachable():
        message = f"PostgreSQL is not reachable at {PG_URL}"
        if IN_CI:
            pytest.fail(message + " (CI=true: the PostgreSQL tests must run)")
        pytest.skip(message)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'orbitq.db'}"
        return
    require_postgres()
    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(EPOCH)


@dataclass
class BrokerHandle:
    broker: Broker
    operator_key: str
    data_dir: Path


def settlement_of(request: pytest.FixtureRequest) -> str:
    """The settlement mode a test asks for with `@pytest.mark.settlement("plan")` (the
    clock starts and completes placed work, for tests that need no node agent); by default
    the broker's own default, "receipts"."""
    marker = request.node.get_closest_marker("settlement")
    return str(marker.args[0]) if marker is not None else "receipts"


@pytest.fixture
def broker(
    request: pytest.FixtureRequest, tmp_path: Path, db_url: str, clock: SimulatedClock
) -> Iterator[BrokerHandle]:
    """An initialised broker on a fresh database, writer running, on a simulated clock."""
    data_dir = tmp_path / "data"
    result = init_data_dir(data_dir, origin="orbitq.test/ledger", db_url=db_url, clock=clock)
    config = replace(
        load_config(data_dir, db_url=db_url),
        checkpoint_interval_seconds=3600,
        settlement=settlement_of(request),
    )
    instance = Broker(config, clock)
    instance.writer.start()
    try:
        yield BrokerHandle(instance, result.operator_key.token, data_dir)
    finally:
        instance.scheduling.close()  # gives up the scheduler's lock (and its connection)
        instance.requests.close()
        instance.writer.stop()
        instance.engine.dispose()


@dataclass
class ServerHandle:
    target: str
    operator_key: str
    broker: Broker
    running: RunningServer


@pytest.fixture
def server(broker: BrokerHandle) -> Iterator[ServerHandle]:
    """A real gRPC server on a free loopback port, in front of `broker`."""
    running = build_server(broker.broker, "127.0.0.1:0")
    try:
        yield ServerHandle(f"127.0.0.1:{running.port}", broker.operator_key, broker.broker, running)
    finally:
        running.stop(grace=1.0)
