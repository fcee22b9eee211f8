"""Small slices of the bundled sky for the constellation tests (full sets are for benchmarks)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from orbitq.clients import BrokerClient
from orbitq.services.orbits import bundled_path
from tests.conftest import ServerHandle

OMM_DATA = Path(__file__).resolve().parent.parent / "orbits" / "data"
# The first satellites of the bundled Starlink snapshot (3-line TLE), epochs near 2025-12-06.
STARLINK_COUNT = 20
# Three bundled stations far apart: Svalbard (78N), Punta Arenas (53S), Hartebeesthoek (26S).
STATION_IDS = ("svalbard", "puntaarenas", "hartebeesthoek")


@cache
def starlink_text(count: int = STARLINK_COUNT) -> str:
    lines = bundled_path("starlink").read_text(encoding="ascii").splitlines()
    return "\n".join(lines[: 3 * count]) + "\n"


@cache
def stations_csv(ids: tuple[str, ...] = STATION_IDS) -> str:
    lines = bundled_path("ground-stations").read_text(encoding="utf-8").splitlines()
    chosen = [line for line in lines[1:] if line.split(",", 1)[0] in ids]
    assert len(chosen) == len(ids)
    return "\n".join([lines[0], *chosen]) + "\n"


def omm_text(name: str) -> str:
    return (OMM_DATA / name).read_text(encoding="utf-8")


def operator(server: ServerHandle) -> BrokerClient:
    return BrokerClient(server.target, server.operator_key, timeout=30)


def tenant_key(server: ServerHandle, tenant: str = "acme") -> str:
    """The API key of a new tenant."""
    with operator(server) as admin:
        admin.create_tenant(tenant)
        return admin.issue_api_key("tenant", tenant).api_key


def tenant_client(server: ServerHandle, tenant: str = "acme") -> BrokerClient:
    return BrokerClient(server.target, tenant_key(server, tenant), timeout=30)
