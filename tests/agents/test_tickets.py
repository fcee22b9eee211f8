"""Tickets over a real broker on loopback: due at the uplink contact, signed with the ticket
key and verified as an agent verifies them, made once per placement (a re-pull returns the
same bytes), never delivered to another node; blobs fetched only as a ticket names them."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from orbitq.services.agents import ticket_key
from orbitq.services.broker import Broker
from orbitq.services.clock import NANOS_PER_SECOND, SimulatedClock, to_ns
from orbitq.services.config import load_config
from orbitq.services.requests import RequestState
from orbitq.services.requests.store import PlacedUplink
from orbitq.services.scheduler import UPLINK_NOTICE_MARGIN_SECONDS
from tests.agents.support import agent_world, module_bytes
from tests.conftest import ServerHandle
from tests.requests.sky import at

S = RequestState


def test_a_placed_request_s_ticket_comes_at_its_uplink_and_says_what_was_placed(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        request, placement = world.placed(output_mb=20)
        clock.set(at(placement.uplink.at - 60))
        assert list(world.agent.pull().tickets) == []  # not yet: the uplink has not begun
        clock.set(at(placement.uplink.at))
        (signed,) = world.agent.pull().tickets
        assert signed.request_id == request.id
        ticket = world.agent.open(signed.envelope, placement.uplink.at)
        assert (ticket.node, ticket.request_id) == (world.agent.node, request.id)
        assert (ticket.start, ticket.end, ticket.expires) == (
            placement.start,
            placement.end,
            placement.end,
        )
        assert ticket.issuer == world.broker.config.origin
        assert ticket.fuel_max == request.reserved.cpu * world.agent.rate
        assert ticket.output_bytes_max == 20 * 1_000_000
        assert ticket.workload_sha256.hex() == world.workload.removeprefix("sha256:")
        assert ticket.input_sha256 is None
        assert [(w.station, w.start, w.end) for w in ticket.downlink] == [
            (s.station, s.start, s.end) for s in placement.downlink
        ]
        # Pulled again, later, before the start: the same bytes.
        clock.set(at(placement.start - 1))
        (again,) = world.agent.pull().tickets
        assert again.envelope == signed.envelope
        # At the start it is no longer delivered (the run begins onboard on its own).
        clock.set(at(placement.start))
        assert list(world.agent.pull().tickets) == []
        assert world.broker.scheduling.advance().started == (request.id,)


def test_another_node_never_receives_a_ticket_or_its_blobs(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        other = world.enroll(world.others[0])
        _request, envelope, ticket = world.pulled()
        assert list(other.pull().tickets) == []
        # The module is fetched by the node its ticket is for, in pieces, exactly.
        module = module_bytes()
        first = world.agent.fetch(world.workload, 0, 10)
        rest = world.agent.fetch(world.workload, 10)
        assert first.total_bytes == len(module)
        assert first.data + rest.data == module
        assert hashlib.sha256(first.data + rest.data).digest() == ticket.workload_sha256
        for agent, digest in ((other, world.workload), (world.agent, "sha256:" + "ab" * 32)):
            with pytest.raises(grpc.RpcError) as hidden:
                agent.fetch(digest)
            assert hidden.value.code() is grpc.StatusCode.NOT_FOUND
        assert envelope  # the pulled ticket was this node's


def test_a_ticket_made_twice_for_one_placement_is_the_first_one(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    # Two pulls racing to make a placement's ticket: the second's insert meets the first's
    # row (the driver's own unique violation, on either database) and returns that ticket.
    with agent_world(server, clock) as world:
        request, envelope, _ticket = world.pulled()
        tickets = world.broker.agents.tickets
        node = world.broker.constellation.node(world.agent.node)
        stored = world.stored(request.id)
        clock.set(clock.now() + timedelta(seconds=1))  # a later issue time: other bytes if made
        again = tickets._make(node, stored, to_ns(clock.now()))
        assert again is not None
        assert (again.request_id, again.placement_sequence) == (request.id, stored.sequence)
        assert again.envelope == envelope
        assert again.pulled


def test_max_tickets_bounds_a_pull(server: ServerHandle, clock: SimulatedClock) -> None:
    with agent_world(server, clock) as world:
        with pytest.raises(grpc.RpcError) as refused:
            world.agent.pull(max_tickets=101)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_work_waits_for_a_node_with_an_enrolled_agent(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    with agent_world(server, clock) as world:
        bare = world.others[0]
        request = world.submit(node_ids=(bare,))
        world.broker.scheduling.run_cycle()
        waiting = world.stored(request.id)
        assert waiting.state is S.PENDING
        assert ("node_agent", "node has no enrolled agent", 1) in [
            (r.plugin, r.reason, r.nodes) for r in waiting.placement_reasons
        ]
        # Once the node's agent enrolls, the next cycle sees it (the world is rebuilt).
        world.enroll(bare)
        world.broker.scheduling.run_cycle()
        assert world.stored(request.id).state in (S.PLACED, S.UNSCHEDULABLE)
        assert "node has no enrolled agent" not in world.stored(request.id).reason


def test_the_ticket_key_is_its_own_0600_file_made_by_init_or_on_start(
    server: ServerHandle, tmp_path: Path
) -> None:
    broker = server.broker
    path = broker.config.ticket_key_path
    assert path.stat().st_mode & 0o777 == 0o600
    assert broker.ticket_signer.public_key != broker.signer.verifier().public_key_raw
    # A data directory from before node agents: the key is made when the broker starts.
    config = replace(broker.config, data_dir=tmp_path / "older")
    config.data_dir.mkdir(mode=0o700)
    shutil.copy(broker.config.key_path, config.key_path)
    config.key_path.chmod(0o600)
    older = Broker(config, broker.clock)
    try:
        assert config.ticket_key_path.stat().st_mode & 0o777 == 0o600
        again = ticket_key.load_or_create(config.ticket_key_path)
        assert again.public_key().public_bytes_raw() == older.ticket_signer.public_key
    finally:
        older.scheduling.close()
        older.engine.dispose()


def test_a_ticket_s_pull_window_opens_the_lead_before_its_uplink_but_inside_its_contact(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    """ticket_pull_lead_seconds before the uplink instant, never before the uplink contact's
    AOS (no earlier contact carries a ticket), the uplink instant itself without a lead or
    when the contact is no longer stored; and a pull inside that window gets the ticket."""
    with agent_world(server, clock) as world:
        request, placement = world.placed()
        agents = world.broker.agents
        node = placement.node
        now_ns = to_ns(clock.now())
        contact = agents.gate.contact(node, placement.uplink.contact, now_ns)
        assert contact is not None
        aos_s = -(-contact.aos_ns // NANOS_PER_SECOND)
        assert world.broker.config.ticket_pull_lead_seconds == 0  # off by default
        lead = 300
        agents._settings = replace(agents._settings, pull_lead_seconds=lead)
        version = world.broker.constellation.world_version()

        def opens(uplink_at: int, contact_id: str = placement.uplink.contact) -> int:
            start = uplink_at + 9
            placed = PlacedUplink(request.id, request.sequence, contact_id, uplink_at, start)
            return agents._pull_opens(node, placed, now_ns, version)

        assert opens(aos_s + 100) == aos_s  # the contact began less than the lead before
        assert opens(aos_s + lead + 50) == aos_s + 50  # the lead before the uplink instant
        assert opens(aos_s + 100, "no-such-contact") == aos_s + 100
        tolerance = world.broker.config.contact_tolerance_seconds
        window_opens = opens(placement.uplink.at)
        assert window_opens <= placement.uplink.at
        clock.set(at(window_opens - tolerance - 1))
        assert list(world.agent.pull().tickets) == []
        clock.set(at(window_opens - tolerance))
        (signed,) = world.agent.pull().tickets
        assert signed.request_id == request.id


def test_with_a_notice_a_pull_says_when_to_pull_next_and_work_placed_after_is_not_missed(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    """ticket_pull_notice_seconds: the scheduler places nothing to begin sooner than its cycle
    + the notice, so a pull's next_pull_at (now + the notice less the margin, or sooner when
    a placement's window opens) is never after the window of work placed later; without a
    notice no instant is promised."""
    with agent_world(server, clock) as world:
        assert not world.agent.pull().HasField("next_pull_at")  # no notice by default
        notice = 600
        broker = world.broker
        broker.agents._settings = replace(broker.agents._settings, pull_notice_seconds=notice)
        scheduler = broker.scheduling.scheduler
        scheduler.config = replace(scheduler.config, uplink_notice_seconds=notice)
        now_s = to_ns(clock.now()) // NANOS_PER_SECOND
        promised = world.agent.pull().next_pull_at.seconds
        assert promised == now_s + notice - UPLINK_NOTICE_MARGIN_SECONDS
        # Placed after the promise, by a cycle a little later: its window opens after it.
        clock.set(at(now_s + 10))
        request, placement = world.placed()
        tolerance = broker.config.contact_tolerance_seconds
        assert placement.uplink.at - tolerance >= promised
        # An agent pulling only at the promised instants gets the ticket inside its window.
        window_opens = placement.uplink.at - tolerance
        pull_at, pulls = promised, 0
        while True:
            clock.set(at(pull_at))
            reply = world.agent.pull()
            pulls += 1
            if reply.tickets:
                break
            assert pulls < 100, "promises without end"
            pull_at = reply.next_pull_at.seconds
            assert pull_at <= window_opens  # never past the window's opening
        (signed,) = reply.tickets
        assert signed.request_id == request.id
        assert window_opens <= pull_at < placement.start


def test_a_cycle_that_commits_past_the_notice_margin_is_logged(
    server: ServerHandle, clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Pulls promise the notice less the margin: a cycle that commits later than the margin
    after its now may break a promise, and the loop says so; a prompt cycle, or no notice,
    says nothing."""
    loop = server.broker.scheduling
    late = timedelta(seconds=UPLINK_NOTICE_MARGIN_SECONDS + 1)
    with caplog.at_level(logging.WARNING, logger="orbitq.services.scheduling.loop"):
        loop.run_cycle(clock.now() - late)  # no notice: nothing to warn about
        loop.scheduler.config = replace(loop.scheduler.config, uplink_notice_seconds=600)
        loop.run_cycle(clock.now())
        assert not caplog.records
        loop.run_cycle(clock.now() - late)
    (record,) = caplog.records
    assert "31 s after its start" in record.getMessage()


def test_config_toml_sets_the_pull_notice_within_its_bounds(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('origin = "o"\nticket_pull_notice_seconds = 120\n')
    assert load_config(tmp_path).ticket_pull_notice_seconds == 120
    assert load_config(tmp_path / "elsewhere").ticket_pull_notice_seconds == 0  # off
    for wrong in (30, 3_601):
        (tmp_path / "config.toml").write_text(
            f'origin = "o"\nticket_pull_notice_seconds = {wrong}\n'
        )
        with pytest.raises(ValueError, match=r"ticket_pull_notice_seconds must be 0 or 60\.\."):
            load_config(tmp_path)
