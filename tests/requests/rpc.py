"""What the service-request RPC tests share: a default job, and a tenant with tokens in the
bundled sky, reached over a real broker's gRPC server."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from orbitq.clients import BrokerClient, RequestSpec
from orbitq.ledger.model import Kind
from tests.conftest import EPOCH, ServerHandle
from tests.integration.sky import operator, tenant_key
from tests.requests.sky import build_world

HOUR = timedelta(hours=1)
MINTED = {Kind.CPU: 100_000, Kind.STORAGE: 100_000, Kind.LINK: 10_000}


def job(**changes: object) -> RequestSpec:
    base = RequestSpec(
        name="job",
        workload="image:v1",
        cpu_millicores=1000,
        run_seconds=600,
        storage_mb=500,
        output_mb=200,
        not_before=EPOCH,
        deadline=EPOCH + 6 * HOUR,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def world_and_tenant(server: ServerHandle, tenant: str = "acme", **minted: int) -> BrokerClient:
    """The bundled sky built, and a client of `tenant` holding MINTED (`minted` overrides kinds
    by name: cpu=100)."""
    build_world(server.broker)
    return tenant_with(server, tenant, **minted)


def tenant_with(server: ServerHandle, tenant: str, **minted: int) -> BrokerClient:
    key = tenant_key(server, tenant)
    amounts = {kind.name.lower(): amount for kind, amount in MINTED.items()}
    amounts.update(minted)
    with operator(server) as admin:
        admin.mint(tenant, **amounts)
    return BrokerClient(server.target, key, timeout=30)
