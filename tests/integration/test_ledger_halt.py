"""A broken ledger invariant stops the broker loudly: a real broker over gRPC on loopback, on
SQLite and PostgreSQL, with a tenant's balances tampered with in the database. The next group
commit that touches that account finds it below zero (A13); the writer halts, the call that
tripped it and every later one answer UNAVAILABLE with the reason, and grpc.health.v1 reports
NOT_SERVING for the server and every service."""

from __future__ import annotations

import secrets

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orbitq.clients import BrokerClient
from orbitq.ledger.model import Kind
from orbitq.services.server import SERVICE_NAMES
from orbitq.v1 import common_pb2, quota_pb2, quota_pb2_grpc
from tests.conftest import ServerHandle

REASON = "(acme cpu) is below zero: available -99"


def _transfer(stub: quota_pb2_grpc.QuotaServiceStub, key: str) -> None:
    stub.Transfer(
        quota_pb2.TransferRequest(
            from_tenant="globex",
            to_tenant="acme",
            amounts=common_pb2.Amounts(cpu=1),
            id=secrets.token_bytes(16),
        ),
        metadata=(("authorization", f"Bearer {key}"),),
        timeout=10,
    )


def _status(channel: grpc.Channel, service: str) -> int | None:
    """The health status of `service`; None when the health service does not know it."""
    try:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return int(response.status)


def test_a_broken_invariant_halts_the_writer_and_the_broker_stops_serving(
    server: ServerHandle,
) -> None:
    with BrokerClient(server.target, server.operator_key, timeout=10) as admin:
        admin.create_tenant("acme")
        admin.create_tenant("globex")
        admin.mint("acme", cpu=10)
        admin.mint("globex", cpu=10)
    with server.broker.engine.begin() as conn:  # acme now owes 100 more than it holds
        conn.exec_driver_sql(
            "UPDATE ledger_accounts SET debits_posted = credits_posted + 100"
            " WHERE tenant = 'acme' AND kind = 1"
        )
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    with grpc.insecure_channel(server.target) as channel:
        stub = quota_pb2_grpc.QuotaServiceStub(channel)
        served = [name for name in ("", *SERVICE_NAMES) if _status(channel, name) == serving]
        assert {"", "orbitq.v1.QuotaService", "orbitq.v1.LedgerService"} <= set(served)
        # The tripping call: its group is rolled back and the writer halts.
        with pytest.raises(grpc.RpcError) as tripped:
            _transfer(stub, server.operator_key)
        assert tripped.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "halted on a broken invariant" in str(tripped.value.details())
        assert REASON in str(tripped.value.details())
        for name in served:
            assert _status(channel, name) == not_serving, name
        # Later calls are refused the same way, before reaching the ledger.
        with pytest.raises(grpc.RpcError) as refused:
            _transfer(stub, server.operator_key)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert REASON in str(refused.value.details())
    assert server.broker.writer.halt_reason is not None
    assert REASON in server.broker.writer.halt_reason
    # Nothing of the tripping group was committed: globex still has its 10.
    globex = {
        a.kind: a.credits_posted - a.debits_posted
        for a in server.broker.store.accounts_of("globex")
    }
    assert globex[Kind.CPU] == 10
