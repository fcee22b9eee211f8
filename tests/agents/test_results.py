"""Result downlink over a real broker on loopback: resumable after a gap (and with a new
store object, as after a restart), idempotent chunks, offset gaps and oversized chunks
refused, the SHA-256 checked at the end (a mismatch restarts the upload), the ticket's output
limit enforced; the tenant then reads its result, another tenant cannot."""

from __future__ import annotations

import hashlib
import secrets

import grpc
import pytest

from orbitq.services.blobs.uploads import ResultUploads
from orbitq.services.clock import SimulatedClock
from orbitq.services.errors import NotFoundError
from orbitq.v1 import agent_pb2
from tests.agents.support import agent_world, code_of
from tests.conftest import ServerHandle
from tests.requests.sky import add_tenant, at, tenant

KIB = 1024


def test_a_result_comes_down_in_chunks_across_a_gap_and_is_checked(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        request, _envelope, ticket = world.running(output_mb=1)
        agent = world.agent
        data = secrets.token_bytes(300 * KIB)
        assert agent.open_result(request.id, data) == 0
        assert agent.put(request.id, 0, data[: 100 * KIB]).next_offset == 100 * KIB
        # A retry of a chunk already stored is a no-op.
        assert agent.put(request.id, 0, data[: 100 * KIB]).next_offset == 100 * KIB
        # A gap past what is stored is refused, naming where to continue.
        with pytest.raises(grpc.RpcError) as gap:
            agent.put(request.id, 200 * KIB, data[200 * KIB :])
        assert code_of(gap.value) is grpc.StatusCode.FAILED_PRECONDITION
        assert f"next_offset {100 * KIB:,}" in (gap.value.details() or "")
        # The contact ends; at the next one the upload resumes where it stopped — also
        # through a new store object, as after a broker restart.
        fresh = ResultUploads(world.broker.engine, world.broker.blob_store, world.broker.now_ns)
        digest = hashlib.sha256(data).digest()
        assert fresh.open(request.id, agent.node, "acme", len(data), digest) == 100 * KIB
        assert agent.open_result(request.id, data) == 100 * KIB
        reply = agent.put(request.id, 100 * KIB, data[100 * KIB :])
        assert (reply.next_offset, reply.complete) == (len(data), True)
        assert agent.open_result(request.id, data) == len(data)
        # The tenant reads it back; another tenant cannot see it.
        got = world.broker.blobs.get(tenant("acme"), "sha256:" + digest.hex(), 0, 0)
        assert got.data == data
        add_tenant(world.broker, "globex")
        with pytest.raises(NotFoundError):
            world.broker.blobs.get(tenant("globex"), "sha256:" + digest.hex(), 0, 0)
        assert ticket.output_bytes_max == 1_000_000


def test_a_wrong_digest_restarts_and_limits_are_enforced(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        request, _envelope, _ticket = world.running(output_mb=1)
        agent = world.agent
        data = secrets.token_bytes(10 * KIB)
        declared = hashlib.sha256(b"something else").digest()
        agent.stub.OpenResult(
            agent_pb2.OpenResultRequest(request_id=request.id, size=len(data), sha256=declared),
            metadata=agent._metadata(),
        )
        with pytest.raises(grpc.RpcError) as mismatch:
            agent.put(request.id, 0, data)
        assert code_of(mismatch.value) is grpc.StatusCode.FAILED_PRECONDITION
        assert "restarts at offset 0" in (mismatch.value.details() or "")
        assert agent.open_result(request.id, data) == 0  # the right digest: from 0
        with pytest.raises(grpc.RpcError) as beyond:
            agent.put(request.id, 0, data + b"x")
        assert code_of(beyond.value) is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as big_chunk:
            agent.put(request.id, 0, bytes(1024 * KIB + 1))
        assert code_of(big_chunk.value) is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as over:
            agent.open_result(request.id, bytes(1_000_001))
        assert code_of(over.value) is grpc.StatusCode.INVALID_ARGUMENT
        assert "output limit" in (over.value.details() or "")


def test_only_the_node_s_running_work_uploads(server: ServerHandle, clock: SimulatedClock) -> None:
    with agent_world(server, clock) as world:
        other = world.enroll(world.others[0])
        request, placement = world.placed()
        clock.set(at(placement.uplink.at))
        with pytest.raises(grpc.RpcError) as early:
            world.agent.open_result(request.id, b"result")
        assert code_of(early.value) is grpc.StatusCode.FAILED_PRECONDITION
        clock.set(at(placement.start))
        with pytest.raises(grpc.RpcError) as foreign:
            other.open_result(request.id, b"result")
        assert code_of(foreign.value) is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as unknown:
            world.agent.open_result("0" * 31 + "1", b"result")
        assert code_of(unknown.value) is grpc.StatusCode.NOT_FOUND
