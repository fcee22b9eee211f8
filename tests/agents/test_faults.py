"""Faults and who pays, over a real broker (SQLite and PostgreSQL): a ticket never pulled, a
ticket the agent refused, a receipt that never came and a node that stops answering are the
operator's faults — the request is placed again while its deadline allows, else FAILED with
its reservation refunded in full (transfers of code `refund`)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import grpc
import pytest
import sqlalchemy as sa

from orbitq.ledger.model import Code
from orbitq.ledger.tickets import RefusalReason
from orbitq.services.agents.tables import TICKET_REFUSALS
from orbitq.services.auth import SYSTEM
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock, from_ns
from orbitq.services.requests import RequestState
from orbitq.services.requests.model import Fault
from orbitq.services.requests.reservations import KINDS, Step, transfer_id
from orbitq.v1 import agent_pb2, constellation_pb2
from tests.agents.support import agent_world
from tests.conftest import EPOCH, ServerHandle
from tests.requests.books import check_books
from tests.requests.sky import MINTED, at

S = RequestState
NS = 1_000_000_000


def _refunded(broker: Broker, request_id: str) -> None:
    """The request FAILED as the operator's fault, every reserved kind refunded."""
    failed = broker.requests.stored(request_id)
    assert failed is not None
    assert failed.state is S.FAILED
    assert failed.fault is Fault.OPERATOR
    assert not failed.reservation_open
    codes = {
        stored.transfer.code
        for kind in KINDS
        if (stored := broker.store.transfer(transfer_id(request_id, Step.RELEASE, kind)))
    }
    assert codes == {Code.REFUND}
    check_books(broker, {"acme": MINTED})


def test_a_ticket_never_pulled_is_placed_again(server: ServerHandle, clock: SimulatedClock) -> None:
    with agent_world(server, clock) as world:
        request, placement = world.placed()
        clock.set(at(placement.start))
        report = world.broker.scheduling.advance()
        assert report.started == ()
        again = world.stored(request.id)
        assert again.state is S.PENDING
        assert "did not pull the ticket" in again.reason
        assert again.reservation_open  # still reserved: it may run yet
        check_books(world.broker, {"acme": MINTED})


def test_a_ticket_never_pulled_too_late_to_run_again_is_refunded(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        request, _placement = world.placed()
        clock.set(at(request.spec.deadline - request.spec.run_seconds))
        world.broker.scheduling.advance()
        _refunded(world.broker, request.id)


def test_a_refused_ticket_is_the_operator_s_fault(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        request, envelope, _ticket = world.pulled()
        refusal = agent_pb2.TicketRefusal(
            request_id=request.id,
            ticket_digest=hashlib.sha256(envelope).digest(),
            reason=agent_pb2.TICKET_REFUSAL_REASON_BAD_SIGNATURE,
            detail="the signature does not verify",
        )
        world.agent.heartbeat((refusal,))
        again = world.stored(request.id)
        assert again.state is S.PENDING
        assert "refused its ticket (bad_signature" in again.reason
        with world.broker.engine.connect() as connection:
            rows = connection.execute(
                sa.select(TICKET_REFUSALS.c.request_id, TICKET_REFUSALS.c.reason)
            ).all()
        assert [tuple(row) for row in rows] == [(request.id, int(RefusalReason.BAD_SIGNATURE))]
        with pytest.raises(grpc.RpcError) as bad:
            world.agent.heartbeat((agent_pb2.TicketRefusal(request_id=request.id),))
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_no_receipt_by_the_deadline_plus_grace_is_refunded(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        request, envelope, ticket = world.running()
        grace = world.broker.config.receipt_grace_seconds
        clock.set(at(request.spec.deadline + grace - 1))
        world.broker.scheduling.advance()
        assert world.stored(request.id).state is S.RUNNING
        clock.set(at(request.spec.deadline + grace))
        world.broker.scheduling.advance()
        _refunded(world.broker, request.id)
        with pytest.raises(grpc.RpcError) as late:
            world.agent.report(world.agent.receipt(envelope, ticket))
        assert late.value.code() is grpc.StatusCode.FAILED_PRECONDITION


def test_a_node_that_misses_contacts_goes_degraded_then_down(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        broker = world.broker
        seen = {
            n: broker.constellation.contacts_between(EPOCH, EPOCH + timedelta(hours=11), node=n)
            for n in world.others
        }
        node = max(seen, key=lambda n: len(seen[n]))
        contacts = seen[node]
        agent = world.enroll(node, "contacts")
        tolerance = broker.config.contact_tolerance_seconds * NS

        def after_ends(since_ns: int, count: int) -> None:
            """The clock just after the `count`-th contact that began after `since_ns`
            ended (the health job counts it missed once it ended, with the tolerance)."""
            ends = sorted(c.los_ns for c in contacts if c.aos_ns > since_ns)
            clock.set(from_ns(ends[count - 1] + tolerance + NS))

        enrolled = int(clock.now().timestamp()) * NS
        after_ends(enrolled, 1)
        assert broker.agents.check_nodes() == {}
        after_ends(enrolled, 2)
        assert broker.agents.check_nodes() == {node: "degraded"}
        # A heartbeat inside the next contact brings it back.
        now_ns = int(clock.now().timestamp() * NS)
        following = next(c for c in contacts if c.aos_ns > now_ns)
        clock.set(from_ns(following.aos_ns + NS))
        assert agent.heartbeat().state == constellation_pb2.NODE_STATE_READY
        assert broker.constellation.node(node).state == "ready"
        # Then it misses four in a row: down, and it stays down.
        after_ends(following.aos_ns + NS, 4)
        assert broker.agents.check_nodes() == {node: "down"}
        assert broker.constellation.node(node).state == "down"
        assert broker.agents.check_nodes() == {}


def test_work_on_a_node_that_went_down_too_late_to_run_again_is_refunded(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        request, _envelope, _ticket = world.running()
        clock.set(at(request.spec.deadline - request.spec.run_seconds))
        world.broker.constellation.set_node_state(SYSTEM, world.agent.node, "down")
        assert request.id in world.broker.scheduling.run_cycle().evacuated
        _refunded(world.broker, request.id)


def test_a_node_call_sees_its_node_s_state_as_written_not_another_s(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    # The node calls keep a copy of each node, moved forward only for the nodes written
    # since: a write of another node keeps it, a write of this node replaces it.
    with agent_world(server, clock) as world:
        constellation = world.broker.constellation
        node, other = world.agent.node, world.others[0]
        ready, degraded = constellation_pb2.NODE_STATE_READY, constellation_pb2.NODE_STATE_DEGRADED
        assert world.agent.heartbeat().state == ready
        constellation.set_node_state(SYSTEM, other, "degraded")
        assert world.agent.heartbeat().state == ready
        constellation.set_node_state(SYSTEM, node, "degraded")
        assert world.agent.heartbeat().state == degraded  # an operator's: it stays
        constellation.set_node_state(SYSTEM, other, "ready")
        assert world.agent.heartbeat().state == degraded
        constellation.set_node_state(SYSTEM, node, "down")
        constellation.set_node_state(SYSTEM, node, "ready")
        assert world.agent.heartbeat().state == ready
