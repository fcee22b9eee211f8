"""Enrollment over a real broker on loopback (SQLite and PostgreSQL): one-time tokens that
expire, bind to one key and are replaced by newer ones; the node's key in the signed log; key
rotation revoking the old key and credential; bad keys, rates and runtimes refused."""

from __future__ import annotations

import grpc
import pytest

from orbitq.services.auth import SYSTEM
from orbitq.services.clock import SimulatedClock
from orbitq.services.identity.api_keys import Role
from orbitq.v1 import constellation_pb2, constellation_pb2_grpc, ledger_pb2, ledger_pb2_grpc
from tests.agents.support import TestAgent, agent_world, code_of
from tests.conftest import ServerHandle

CODE = grpc.StatusCode


def test_an_agent_enrolls_and_its_key_is_in_the_signed_log(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        agent = world.enroll(world.others[0])
        # Its credential is a node key that works for its node.
        assert agent.pull().server_time.seconds > 0
        # The ticket key it pinned is the one GetPublicKey publishes, not the checkpoints'.
        metadata = (("authorization", f"Bearer {server.operator_key}"),)
        ledger = ledger_pb2_grpc.LedgerServiceStub(world.channel)
        published = ledger.GetPublicKey(ledger_pb2.GetPublicKeyRequest(), metadata=metadata)
        assert published.ticket_verifier_key == broker.ticket_signer.verifier_key()
        assert published.ticket_verifier_key != published.verifier_key
        # ListNodes shows the agent.
        nodes = constellation_pb2_grpc.ConstellationServiceStub(world.channel)
        listed = {
            n.id: n
            for n in nodes.ListNodes(constellation_pb2.ListNodesRequest(), metadata=metadata).nodes
        }
        shown = listed[agent.node].agent
        assert shown.enrolled
        assert shown.public_key == agent.public_key
        assert shown.ground_link == constellation_pb2.GROUND_LINK_ALWAYS
        assert shown.fuel_per_core_second == agent.rate
        assert shown.runtime == agent.runtime
        assert not listed[world.others[1]].HasField("agent")
        # The NodeKeyEnrolled entry names the node and its key.
        broker.sign_checkpoint()
        (index, entry), *_ = broker.store.entries(shown.key_entry_index, shown.key_entry_index + 1)
        assert index == shown.key_entry_index
        enrolled = ledger_pb2.LedgerEntry.FromString(entry).node_key_enrolled
        assert (enrolled.node, enrolled.public_key) == (agent.node, agent.public_key)
        assert enrolled.fuel_per_core_second == agent.rate


def test_a_token_expires_is_single_use_and_is_replaced_by_a_newer_one(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        node = world.others[0]
        other = world.others[1]
        expiring = broker.agents.create_enrollment_token(SYSTEM, node, "always", 60)
        clock.advance(61)
        with pytest.raises(grpc.RpcError) as expired:
            TestAgent(world.channel, node, "").enroll(expiring.token)
        assert code_of(expired.value) is CODE.UNAUTHENTICATED
        assert "expired" in (expired.value.details() or "")

        first = broker.agents.create_enrollment_token(SYSTEM, node, "always", 0)
        second = broker.agents.create_enrollment_token(SYSTEM, node, "always", 0)
        with pytest.raises(grpc.RpcError) as replaced:
            TestAgent(world.channel, node, "").enroll(first.token)
        assert code_of(replaced.value) is CODE.UNAUTHENTICATED
        assert "replaced" in (replaced.value.details() or "")

        agent = TestAgent(world.channel, node, "")
        credential = agent.enroll(second.token).api_key
        # The same key again (an agent that crashed before storing its credential): a new
        # credential, and the first one stops working.
        again = agent.enroll(second.token).api_key
        assert again != credential
        agent.api_key = credential
        with pytest.raises(grpc.RpcError) as revoked:
            agent.pull()
        assert code_of(revoked.value) is CODE.UNAUTHENTICATED
        # Another key with a used token: refused.
        with pytest.raises(grpc.RpcError) as used:
            TestAgent(world.channel, node, "").enroll(second.token)
        assert code_of(used.value) is CODE.FAILED_PRECONDITION
        # A token for another node.
        elsewhere = broker.agents.create_enrollment_token(SYSTEM, other, "always", 0)
        with pytest.raises(grpc.RpcError) as wrong:
            TestAgent(world.channel, node, "").enroll(elsewhere.token)
        assert code_of(wrong.value) is CODE.PERMISSION_DENIED


def test_enrolling_again_rotates_the_key_and_revokes_the_old_credentials(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        node = world.agent.node
        # An operator-issued node key for the node is revoked too.
        spare = broker.tenants.issue_key(SYSTEM, Role.NODE, "", node, "spare")
        old = world.agent
        assert old.pull() is not None
        new = world.enroll(node)
        assert new.public_key != old.public_key
        for key in (old.api_key, spare.token):
            probe = TestAgent(world.channel, node, "")
            probe.api_key = key
            with pytest.raises(grpc.RpcError) as revoked:
                probe.pull()
            assert code_of(revoked.value) is CODE.UNAUTHENTICATED
        assert new.pull() is not None
        agent = broker.constellation.node(node).agent
        assert agent is not None
        assert agent.public_key == new.public_key
        assert agent.key_entry_index > 0


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("public_key", b"\x01" * 31, CODE.INVALID_ARGUMENT),
        ("fuel_per_core_second", 10**7, CODE.INVALID_ARGUMENT),
        ("fuel_per_core_second", 10**12, CODE.INVALID_ARGUMENT),
        ("runtime", "", CODE.INVALID_ARGUMENT),
        ("runtime", "w" * 65, CODE.INVALID_ARGUMENT),
        ("enrollment_token", "oqe_not_a_token", CODE.UNAUTHENTICATED),
        ("node", "99999999", CODE.NOT_FOUND),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_enrollments_are_refused_and_leave_the_token_usable(
    server: ServerHandle, clock: SimulatedClock, field: str, value: object, code: grpc.StatusCode
) -> None:
    with agent_world(server, clock) as world:
        node = world.others[0]
        made = world.broker.agents.create_enrollment_token(SYSTEM, node, "contacts", 0)
        agent = TestAgent(world.channel, node, "")
        with pytest.raises(grpc.RpcError) as refused:
            agent.enroll(made.token, **{field: value})
        assert code_of(refused.value) is code
        assert world.broker.constellation.node(node).agent is None
        agent.enroll(made.token)  # the token still works for a good request
        assert world.broker.constellation.node(node).agent is not None


def test_enrollment_tokens_are_for_operators_and_known_nodes(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        stub = constellation_pb2_grpc.ConstellationServiceStub(world.channel)
        metadata = (("authorization", f"Bearer {server.operator_key}"),)
        node = world.others[0]
        made = stub.CreateEnrollmentToken(
            constellation_pb2.CreateEnrollmentTokenRequest(node=node, ttl_seconds=60),
            metadata=metadata,
        )
        assert made.token.startswith("oqe_")
        assert made.expires_at.seconds == int(clock.now().timestamp()) + 60
        for request, code in (
            (
                constellation_pb2.CreateEnrollmentTokenRequest(node=node, ttl_seconds=59),
                CODE.INVALID_ARGUMENT,
            ),
            (
                constellation_pb2.CreateEnrollmentTokenRequest(node=node, ttl_seconds=86_401),
                CODE.INVALID_ARGUMENT,
            ),
            (constellation_pb2.CreateEnrollmentTokenRequest(node="424242"), CODE.NOT_FOUND),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                stub.CreateEnrollmentToken(request, metadata=metadata)
            assert code_of(refused.value) is code
