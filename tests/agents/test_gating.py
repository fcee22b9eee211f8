"""Contact gating: a satellite's agent reaches the broker only inside its contact windows
(with the tolerance); outside, FAILED_PRECONDITION names the next contact; a ground stand-in
enrolled with the ground link "always" may call at any time; EnrollNode is never gated."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import grpc
import pytest

from orbitq.services.auth import SYSTEM
from orbitq.services.clock import SimulatedClock, from_ns
from orbitq.services.constellation import StoredContact
from orbitq.services.scheduler import rfc3339
from tests.agents.support import TestAgent, agent_world
from tests.conftest import EPOCH, ServerHandle

TOLERANCE = 5
NS = 1_000_000_000


def _gap(contacts: list[StoredContact]) -> tuple[StoredContact, StoredContact]:
    """A contact alone (no other within a minute before it) and the next, at least a minute
    after it (a node's contacts with several stations may overlap)."""
    ended = 0
    for index, (first, second) in enumerate(itertools.pairwise(contacts)):
        lone = first.aos_ns - ended > 60 * NS and index > 0
        ended = max(ended, first.los_ns)
        if lone and second.aos_ns - ended > 60 * NS:
            return first, second
    raise AssertionError("no lone contact")


def _pull_code(agent: TestAgent) -> tuple[grpc.StatusCode, str]:
    try:
        agent.pull()
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def test_calls_pass_inside_contacts_with_the_tolerance_and_name_the_next_contact_outside(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        node = world.others[0]
        agent = world.enroll(node, "contacts")  # EnrollNode itself is not gated
        contacts = world.broker.constellation.contacts_between(
            EPOCH, EPOCH + timedelta(hours=11), node=node
        )
        first, second = _gap(contacts)
        # The clock keeps microseconds: the edges are rounded inwards.
        moments = [
            (first.aos_ns - (TOLERANCE + 1) * NS, first),
            (-(-(first.aos_ns - TOLERANCE * NS) // 1000) * 1000, None),
            ((first.aos_ns + first.los_ns) // 2, None),
            ((first.los_ns + TOLERANCE * NS) // 1000 * 1000, None),
            (first.los_ns + (TOLERANCE + 1) * NS, second),
        ]
        for ns, upcoming in moments:
            clock.set(from_ns(ns))
            code, message = _pull_code(agent)
            if upcoming is None:
                assert code is grpc.StatusCode.OK, message
                continue
            assert code is grpc.StatusCode.FAILED_PRECONDITION
            assert message == (
                f"node {node} is outside its contact windows; the next is with station"
                f" {upcoming.station} from {rfc3339(upcoming.aos_ns // NS)} to"
                f" {rfc3339(upcoming.los_ns // NS)}"
            )
        # Every node call is gated, the heartbeat too.
        with pytest.raises(grpc.RpcError) as gated:
            agent.heartbeat()
        assert gated.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        # Past the plan's horizon there is no next contact to name.
        clock.set(EPOCH + timedelta(hours=13))
        code, message = _pull_code(agent)
        assert code is grpc.StatusCode.FAILED_PRECONDITION
        assert "holds no further contact" in message


def test_a_ground_stand_in_may_call_at_any_time(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        node = world.others[0]
        gated = world.enroll(node, "contacts")
        contacts = world.broker.constellation.contacts_between(
            EPOCH, EPOCH + timedelta(hours=11), node=node
        )
        first, _ = _gap(contacts)
        clock.set(from_ns(first.los_ns + 30 * NS))
        assert _pull_code(gated)[0] is grpc.StatusCode.FAILED_PRECONDITION
        always = world.enroll(node, "always")
        assert _pull_code(always)[0] is grpc.StatusCode.OK
        assert always.heartbeat().contacts  # it learns the node's next contacts anyway


def test_the_contacts_copy_outlives_node_writes_and_not_a_new_plan(
    server: ServerHandle, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A node's state written (the world revision moves) changes no contact: the gate keeps its
    # copy; a refresh of the plan (its version moves) may, so the copy is read again.
    with agent_world(server, clock) as world:
        constellation, gate = world.broker.constellation, world.broker.agents.gate
        node, other = world.agent.node, world.others[0]
        reads = []
        read = constellation.iter_contacts_between

        def counted(*args: Any, **kwargs: Any) -> Any:
            reads.append(kwargs.get("node"))
            return read(*args, **kwargs)

        monkeypatch.setattr(constellation, "iter_contacts_between", counted)
        now_ns = int(clock.now().timestamp()) * NS
        first = constellation.world_version()
        contacts = gate.next_contacts(node, now_ns, version=first)
        assert contacts
        assert reads == [node]
        constellation.set_node_state(SYSTEM, other, "degraded")
        moved = constellation.world_version()
        assert moved.world_revision > first.world_revision
        assert moved.plan_version == first.plan_version
        assert gate.next_contacts(node, now_ns, version=moved) == contacts
        assert reads == [node]
        constellation.refresh_contacts()
        refreshed = constellation.world_version()
        assert refreshed.plan_version > first.plan_version
        assert gate.next_contacts(node, now_ns, version=refreshed)  # its horizon moved on too
        assert reads == [node, node]
