"""The online policy: what a cycle may take away from placements announced in earlier cycles
(repacking moves, preemption), and its bounds — never work whose ticket may be aboard (the
guard), never more than the per-cycle budget, never one request more than twice."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orbitq.services.scheduler import (
    Contact,
    Node,
    Request,
    Scheduler,
    SchedulerConfig,
    Station,
)
from tests.scheduler.schedule_validator import validate
from tests.scheduler.scheduler_worlds import (
    BASE,
    HORIZON,
    SmallWorld,
    document,
    requests,
    worlds,
)
from tests.scheduler.test_runtime import job, scheduler_for


def _passes_world(passes: int) -> SmallWorld:
    """One node, one single-antenna station; an uplink contact, then a 100 s pass every
    2,000 s from 1,000 s, each with a 20 s contact 800 s before it for its own uplink: a
    100 MB result at 8 Mbps fills a pass."""
    node = Node("n0", 4000, 10_000, 8, 8)
    contacts = [Contact("up", "n0", "s1", 300, 400)]
    for index in range(passes):
        start = 1000 + 2000 * index
        contacts.append(Contact(f"d{index + 1}", "n0", "s1", start, start + 100))
        contacts.append(Contact(f"u{index + 1}", "n0", "s1", start - 800, start - 780))
    return SmallWorld([node], [Station("s1", 1)], contacts)


FLEXIBLE = job("first", priority=5, output_mb=100, deadline=9000)


def _needs_pass(index: int, rid: str) -> Request:
    """A request whose result can only come down in pass d<index> (1-based)."""
    start = 1000 + 2000 * (index - 1)
    return job(rid, priority=1, output_mb=100, not_before=start - 850, deadline=start + 200)


def _pass_of(scheduler: Scheduler, request_id: str) -> str:
    placement = scheduler.placement(request_id)
    assert placement is not None
    return placement.downlink[-1].contact


def test_an_announced_placement_moves_to_make_room_for_a_later_arrival() -> None:
    world = _passes_world(2)
    scheduler = scheduler_for(world)
    assert [p.request for p in scheduler.run_cycle([FLEXIBLE], now=0).placed] == ["first"]
    assert _pass_of(scheduler, "first") == "d1"  # the earliest completion
    tight = _needs_pass(1, "tight")
    result = scheduler.run_cycle([tight], now=0)
    # Nobody loses a placement: the earlier one is taken away and placed again at once.
    assert result.moved == ("first",)
    assert result.displaced == ("first",)
    assert sorted(p.request for p in result.placed) == ["first", "tight"]
    assert (_pass_of(scheduler, "first"), _pass_of(scheduler, "tight")) == ("d2", "d1")
    assert validate(document(scheduler, world, [FLEXIBLE, tight])) == []


def test_a_placement_whose_ticket_may_be_aboard_is_never_moved() -> None:
    """Its uplink (200 s) begins within now + the guard: an agent may have pulled it."""
    world = _passes_world(2)
    assert scheduler_for(world).run_cycle([FLEXIBLE], now=0).placed[0].uplink.at == 200
    for now, guard in ((0, 200), (140, 60), (200, 0)):
        scheduler = scheduler_for(world, displace_guard_seconds=guard)
        scheduler.run_cycle([FLEXIBLE], now=0)
        before = scheduler.placement("first")
        result = scheduler.run_cycle([_needs_pass(1, "tight")], now=now)
        assert result.moved == result.displaced == ()
        assert scheduler.placement("first") == before
        assert [u.request for u in result.pending] == ["tight"]
    # Just outside the guard it may move.
    scheduler = scheduler_for(world, displace_guard_seconds=60)
    scheduler.run_cycle([FLEXIBLE], now=0)
    assert scheduler.run_cycle([_needs_pass(1, "tight")], now=139).moved == ("first",)


def test_moves_of_announced_placements_stay_within_the_cycle_budget() -> None:
    world = _passes_world(2)
    scheduler = scheduler_for(world, displacements_per_cycle_max=0)
    scheduler.run_cycle([FLEXIBLE], now=0)
    result = scheduler.run_cycle([_needs_pass(1, "tight")], now=0)
    assert result.moved == ()
    assert _pass_of(scheduler, "first") == "d1"
    # Repacking earlier placements can also be turned off alone, or left no dry runs.
    for config in ({"repack_earlier": False}, {"repack_earlier_tries_per_cycle_max": 0}):
        scheduler = scheduler_for(world, **config)
        scheduler.run_cycle([FLEXIBLE], now=0)
        assert scheduler.run_cycle([_needs_pass(1, "tight")], now=0).moved == ()


def test_one_request_is_taken_away_at_most_twice() -> None:
    """Each later arrival needs the pass `first` holds; `first` could always move one pass
    on, but after two moves it stays: no request is shuffled without end."""
    world = _passes_world(4)
    for limit, moves in ((2, 2), (3, 3), (0, 0)):
        scheduler = scheduler_for(world, takes_per_request_max=limit)
        scheduler.run_cycle([FLEXIBLE], now=0)
        moved = 0
        for index in (1, 2, 3):
            result = scheduler.run_cycle([_needs_pass(index, f"t{index}")], now=0)
            moved += len(result.moved)
            assert ("first" in result.moved) == (index <= moves)
            # The arrival that needs the pass `first` was left in after its last move waits.
            assert [p.request for p in result.placed if p.request != "first"] == (
                [] if index == moves + 1 else [f"t{index}"]
            )
        assert moved == moves
        assert _pass_of(scheduler, "first") == f"d{moves + 1}"


def test_preemption_never_displaces_work_whose_ticket_may_be_aboard() -> None:
    """The uplink contact is [1000, 1100): with a guard of 600 s at 500 s the low request's
    ticket may be aboard, with 400 s it cannot."""
    node = Node("n0", 1000, 10_000, 80, 8)
    contacts = [Contact("up", "n0", "s1", 1000, 1100), Contact("down", "n0", "s1", 1700, 1800)]
    world = SmallWorld([node], [Station("s1", 1)], contacts)
    for guard, displaced in ((600, ()), (400, ("low",))):
        scheduler = scheduler_for(world, displace_guard_seconds=guard)
        assert scheduler.run_cycle([job("low", priority=1, deadline=2000)], now=0).placed
        result = scheduler.run_cycle([job("high", priority=7, deadline=2000)], now=500)
        assert result.displaced == displaced
        assert result.moved == ()  # preempted, not moved
        assert (scheduler.placement("low") is None) == bool(displaced)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_online_rule_holds_over_cycles_of_arrivals(data: st.DataObject) -> None:
    """Whatever arrives: an announced placement changes only when the cycle reports it
    displaced; never one whose uplink begins by now + the guard; at most the budget per cycle
    and twice per request; a moved one is placed again; a preempted one lost its place to
    higher-priority work; and the schedule stays valid."""
    world = data.draw(worlds(nodes_max=1, stations_max=1))  # contended: work is taken away
    guard = data.draw(st.sampled_from((0, 60, 600)))
    budget = data.draw(st.integers(0, 4))
    config = SchedulerConfig(displace_guard_seconds=guard, displacements_per_cycle_max=budget)
    scheduler = Scheduler(config)
    scheduler.set_world(world.nodes, world.stations, world.contacts)
    everything: list[Request] = []
    pending: list[Request] = []
    takes: Counter[str] = Counter()
    now = BASE
    for cycle in range(4):
        arrivals = data.draw(requests(world, count_max=12, prefix=f"c{cycle}-", priorities=(0, 9)))
        everything += arrivals
        pending = [*pending, *arrivals]
        before = {p.request: p for p in scheduler.placements()}
        result = scheduler.run_cycle(pending, now=now)
        taken = [request_id for request_id in result.displaced if request_id in before]
        assert len(taken) <= budget
        assert set(result.moved) <= set(taken)
        for request_id, placement in before.items():
            if scheduler.placement(request_id) != placement:
                assert request_id in result.displaced, "an announced placement changed silently"
                assert placement.uplink.at > now + guard, "a ticket may have been aboard"
        placed_now = {p.request for p in result.placed}
        for request_id in result.moved:
            assert request_id in placed_now
        by_id = {r.id: r for r in everything}
        top = max((by_id[r].priority for r in placed_now), default=-1)
        for request_id in taken:
            if request_id not in placed_now:
                assert by_id[request_id].priority < top, "lost its place to no higher priority"
        takes.update(taken)
        assert max(takes.values(), default=0) <= config.takes_per_request_max
        waiting = {u.request for u in result.pending}
        pending = [r for r in everything if r.id in waiting]
        event(f"taken {min(len(taken), 3)}, moved {bool(result.moved)}")
        assert validate(document(scheduler, world, everything)) == []
        now += data.draw(st.integers(0, HORIZON // 8))
