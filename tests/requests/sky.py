"""A small world for the request service's tests: a few Starlink satellites, three stations,
a few hours of contacts, a tenant with tokens — set up in-process (no gRPC), in well under a
second."""

from __future__ import annotations

from datetime import datetime, timedelta

from orbitq.ledger.model import Kind
from orbitq.services.auth import Principal
from orbitq.services.broker import Broker
from orbitq.services.constellation import NodeImport
from orbitq.services.identity.api_keys import Role
from orbitq.services.quota import new_operation_id
from orbitq.services.requests import RequestSpec
from tests.conftest import EPOCH
from tests.integration.sky import starlink_text, stations_csv

OPERATOR = Principal(key_id="test-operator", role=Role.OPERATOR)
HOUR = 3600
T0 = int(EPOCH.timestamp())
MINTED = {Kind.CPU: 1_000_000, Kind.STORAGE: 1_000_000, Kind.LINK: 100_000}


def tenant(name: str) -> Principal:
    return Principal(key_id=f"test-{name}", role=Role.TENANT, tenant=name)


def build_world(broker: Broker, satellites: int = 20, hours: float = 12) -> None:
    broker.constellation.import_nodes(OPERATOR, NodeImport(text=starlink_text(satellites)))
    broker.constellation.import_stations(OPERATOR, stations_csv())
    broker.constellation.refresh_contacts(horizon_hours=hours)


def add_tenant(broker: Broker, name: str, amounts: dict[Kind, int] | None = None) -> Principal:
    broker.tenants.create(OPERATOR, name, "")
    broker.quota.mint(OPERATOR, name, amounts or MINTED, new_operation_id())
    return tenant(name)


def spec(
    *,
    cpu: int = 1000,
    run: int = 600,
    storage: int = 500,
    output: int = 200,
    input_mb: int = 0,
    not_before: int = T0,
    deadline: int = T0 + 6 * HOUR,
    priority: int = 0,
    **selectors: object,
) -> RequestSpec:
    return RequestSpec(
        name="job",
        workload="image:v1",
        cpu_millicores=cpu,
        run_seconds=run,
        storage_mb=storage,
        input_mb=input_mb,
        output_mb=output,
        not_before=not_before,
        deadline=deadline,
        priority=priority,
        **selectors,  # type: ignore[arg-type]
    )


def at(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds - T0)
