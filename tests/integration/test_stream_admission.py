"""Issue 16.1: long-lived streams cannot starve the broker (real server on loopback, SQLite and
PostgreSQL). More streams than every cap allows are opened, without a key and with a tenant
key (health watches, reflection streams, WatchRequest); the excess is refused at once with
RESOURCE_EXHAUSTED, an operator's unary calls still answer within their normal deadline, and
once the streams close the broker accepts new ones. A stream also has a lifetime."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from orbitq.services.auth import SYSTEM
from orbitq.services.boundary.admission import StreamLimits, peer_address
from orbitq.services.config import load_config
from orbitq.services.identity.api_keys import Role
from orbitq.services.server import STREAM_WORKERS_MAX, WORKER_THREADS, build_server
from orbitq.v1 import admin_pb2, admin_pb2_grpc, request_pb2, request_pb2_grpc
from tests.conftest import BrokerHandle
from tests.requests.sky import add_tenant, build_world, spec, tenant

# An operator's ordinary call answers well within this on loopback (it took 5 s and failed
# with DEADLINE_EXCEEDED when idle streams held every worker).
UNARY_DEADLINE_SECONDS = 5.0
WAIT_SECONDS = 15.0
# Of each kind: together far more than any cap, and than the server's worker threads.
STREAMS_OF_EACH_KIND = 40


@dataclass
class Streams:
    """Open streams of every kind; `admitted` and `refused` count their first answers."""

    calls: list[Any] = field(default_factory=list)
    admitted: int = 0
    refused: int = 0
    # Anything else a stream's first answer was (there must be nothing).
    unexpected: list[str] = field(default_factory=list)
    leave: threading.Event = field(default_factory=threading.Event)

    def first(self, call: Any) -> None:
        self.calls.append(call)
        try:
            next(iter(call))
        except grpc.RpcError as error:
            details = error.details() or ""
            # The gate's caps, or WatchRequest's own per-tenant cap.
            if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and (
                "long-lived streams" in details or "open watches" in details
            ):
                self.refused += 1
            else:
                self.unexpected.append(f"{error.code()}: {details}")
        else:
            self.admitted += 1

    def close(self) -> None:
        self.leave.set()
        for call in self.calls:
            call.cancel()

    def idle_requests(self) -> Iterator[reflection_pb2.ServerReflectionRequest]:
        # One question, then the client keeps its stream open and says nothing more.
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        self.leave.wait(WAIT_SECONDS * 4)


def _open_streams(
    channel: grpc.Channel, streams: Streams, tenant_key: str, request_id: str
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = request_pb2_grpc.RequestServiceStub(channel)
    tenant = (("authorization", f"Bearer {tenant_key}"),)
    for index in range(STREAMS_OF_EACH_KIND):
        # Alternately without a key and with the tenant's (the open services ignore it).
        metadata = tenant if index % 2 else None
        streams.first(health.Watch(health_pb2.HealthCheckRequest(), metadata=metadata))
        streams.first(reflection.ServerReflectionInfo(streams.idle_requests(), metadata=metadata))
        streams.first(
            requests.WatchRequest(request_pb2.WatchRequestRequest(id=request_id), metadata=tenant)
        )


def _operator_answers(channel: grpc.Channel, operator_key: str) -> None:
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    metadata = (("authorization", f"Bearer {operator_key}"),)
    for _ in range(10):
        admin.ListTenants(
            admin_pb2.ListTenantsRequest(), timeout=UNARY_DEADLINE_SECONDS, metadata=metadata
        )


def _wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.settlement("plan")
@pytest.mark.parametrize(
    "limits",
    [
        pytest.param(StreamLimits(), id="per-peer-cap"),
        pytest.param(StreamLimits(total_max=STREAM_WORKERS_MAX, per_peer_max=1000), id="total-cap"),
    ],
)
def test_streams_beyond_the_caps_do_not_delay_an_operator(
    broker: BrokerHandle, limits: StreamLimits
) -> None:
    build_world(broker.broker, satellites=2, hours=2)
    add_tenant(broker.broker, "acme")
    request, _ = broker.broker.requests.submit(tenant("acme"), spec(), "watched")
    tenant_key = broker.broker.tenants.issue_key(SYSTEM, Role.TENANT, "acme", "", "streams").token
    running = build_server(broker.broker, "127.0.0.1:0", stream_limits=limits)
    streams = Streams()
    cap = min(limits.total_max, limits.per_peer_max)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            _open_streams(channel, streams, tenant_key, request.id)
            assert streams.unexpected == []
            assert streams.admitted == cap
            assert streams.refused == 3 * STREAMS_OF_EACH_KIND - cap
            assert running.streams.open == cap
            assert cap <= WORKER_THREADS // 2
            _operator_answers(channel, broker.operator_key)
            streams.close()
            _wait_until(lambda: running.streams.open == 0, "stream slots were not given back")
            # The broker recovered: new streams are accepted, as many as before.
            again = Streams()
            _open_streams(channel, again, tenant_key, request.id)
            assert again.admitted == cap
            again.close()
            _operator_answers(channel, broker.operator_key)
    finally:
        streams.close()
        running.stop(grace=1.0)


def test_a_stream_has_a_lifetime(broker: BrokerHandle) -> None:
    limits = StreamLimits(lifetime_seconds=1.0, close_grace_seconds=1.0)
    running = build_server(broker.broker, "127.0.0.1:0", stream_limits=limits)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            replies = iter(watch)
            assert next(replies).status == health_pb2.HealthCheckResponse.SERVING
            assert running.streams.open == 1
            # Nothing is sent on the watch; the server ends it when its connection is too old.
            _wait_until(lambda: running.streams.open == 0, "the idle stream outlived its life")
            with pytest.raises(grpc.RpcError):
                next(replies)
    finally:
        running.stop(grace=1.0)


def test_peer_address_ignores_the_port() -> None:
    assert peer_address("ipv4:10.0.0.7:5301") == "10.0.0.7"
    assert peer_address("ipv6:[::1]:5301") == "::1"
    assert peer_address("unix:/tmp/socket") == "unix:/tmp/socket"
    with pytest.raises(ValueError, match="at least 1"):
        StreamLimits(per_peer_max=0)


def test_the_stream_limits_are_configured(tmp_path: Path, broker: BrokerHandle) -> None:
    (tmp_path / "config.toml").write_text(
        "streams_max = 8\nstreams_per_peer_max = 2\nstream_seconds_max = 60\n"
    )
    config = load_config(tmp_path)
    assert (config.streams_max, config.streams_per_peer_max) == (8, 2)
    assert config.stream_seconds_max == 60.0
    (tmp_path / "config.toml").write_text("streams_per_peer_max = 0\n")
    with pytest.raises(ValueError, match="streams_per_peer_max must be a whole number >= 1"):
        load_config(tmp_path)
    # More streams than half the workers would eat the unary calls' reserve.
    too_many = StreamLimits(total_max=STREAM_WORKERS_MAX + 1)
    with pytest.raises(ValueError, match="half the server's 64 worker threads"):
        build_server(broker.broker, "127.0.0.1:0", stream_limits=too_many)
