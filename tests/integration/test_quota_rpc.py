"""Tenants and quota end to end: real server on loopback, real SDK, SQLite and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from orbitq.clients import (
    AlreadyExistsError,
    BrokerClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from tests.conftest import ServerHandle


def operator(server: ServerHandle) -> BrokerClient:
    return BrokerClient(server.target, server.operator_key, timeout=10)


def test_tenants_mint_transfer_and_balances(server: ServerHandle) -> None:
    with operator(server) as admin:
        admin.create_tenant("acme", "Acme Orbital")
        admin.create_tenant("globex")
        admin.mint("acme", cpu=1000, storage=50, link=30)
        acme_key = admin.issue_api_key("tenant", "acme").api_key
        names = [tenant.name for tenant in admin.list_tenants().items]
        assert names == ["acme", "globex"]
    with BrokerClient(server.target, acme_key) as acme:
        outcomes = acme.transfer("globex", cpu=400, link=10)
        assert [o.result for o in outcomes] == ["ok", "ok"]
        balances = {a.kind: a.available for a in acme.balances()}
        assert balances == {"cpu": 600, "storage": 50, "link": 20}
        with pytest.raises(FailedPreconditionError, match=r"insufficient cpu tokens.*short by 400"):
            acme.transfer("globex", cpu=1000)
        # The refused transfer moved nothing, in any kind.
        assert {a.kind: a.available for a in acme.balances()} == balances
    with operator(server) as admin:
        globex = {a.kind: a.available for a in admin.balances("globex")}
        assert globex == {"cpu": 400, "storage": 0, "link": 10}


def test_retrying_an_operation_id_returns_the_original_outcome(server: ServerHandle) -> None:
    with operator(server) as admin:
        admin.create_tenant("acme")
        op = "0123456789abcdef0123456789abcdef"
        first = admin.mint("acme", cpu=10, id=op)
        again = admin.mint("acme", cpu=10, id=op)
        assert [o.result for o in first] == ["ok"]
        assert [o.result for o in again] == ["exists"]
        assert again[0].transfer == first[0].transfer
        assert admin.balances("acme")[0].available == 10
        with pytest.raises(AlreadyExistsError, match="already used for a different operation"):
            admin.mint("acme", cpu=11, id=op)


def test_tenant_isolation_and_authentication(server: ServerHandle) -> None:
    with operator(server) as admin:
        admin.create_tenant("acme")
        admin.create_tenant("globex")
        acme_key = admin.issue_api_key("tenant", "acme")
    with BrokerClient(server.target, acme_key.api_key) as acme:
        with pytest.raises(PermissionDeniedError):
            acme.balances("globex")
        with pytest.raises(PermissionDeniedError):
            acme.transfer("acme", cpu=1, from_tenant="globex")
        with pytest.raises(PermissionDeniedError):
            acme.create_tenant("evil")
        with pytest.raises(PermissionDeniedError):
            acme.mint("acme", cpu=5)
        assert [t.name for t in acme.list_tenants().items] == ["acme"]
    with operator(server) as admin:
        admin.revoke_api_key(acme_key.key.key_id)
    with (
        BrokerClient(server.target, acme_key.api_key) as revoked,
        pytest.raises(UnauthenticatedError, match="revoked"),
    ):
        revoked.balances()
    with (
        BrokerClient(server.target, "oq_notakey") as bad,
        pytest.raises(UnauthenticatedError, match="malformed"),
    ):
        bad.balances()


def test_bad_input_gets_precise_statuses(server: ServerHandle) -> None:
    with operator(server) as admin:
        admin.create_tenant("acme")
        with pytest.raises(NotFoundError, match="no tenant named 'nobody'"):
            admin.mint("nobody", cpu=1)
        with pytest.raises(InvalidArgumentError, match="at least one kind"):
            admin.mint("acme")
        with pytest.raises(InvalidArgumentError, match="above the maximum"):
            admin.mint("acme", cpu=2**63)
        with pytest.raises(InvalidArgumentError, match="not valid"):
            admin.create_tenant("Bad Name!")
        with pytest.raises(InvalidArgumentError, match="not valid"):
            admin.create_tenant("x" * 64)
        with pytest.raises(AlreadyExistsError):
            admin.create_tenant("acme")
        with pytest.raises(InvalidArgumentError, match="cannot transfer to itself"):
            admin.transfer("acme", cpu=1, from_tenant="acme")


def test_unauthenticated_calls_are_refused_and_health_is_open(server: ServerHandle) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from orbitq.v1 import quota_pb2, quota_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        stub = quota_pb2_grpc.QuotaServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetBalances(quota_pb2.GetBalancesRequest(), timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
