"""Every schedule the scheduler produces on random small worlds passes the independent
validator, across cycles with releases, new arrivals, preemption and pruning."""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orbitq.services.scheduler import Request, Scheduler, SchedulerConfig
from tests.scheduler.schedule_validator import validate
from tests.scheduler.scheduler_worlds import BASE, HORIZON, document, requests, worlds


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_one_cycle_is_valid(data: st.DataObject) -> None:
    world = data.draw(worlds())
    pending = data.draw(requests(world))
    scheduler = Scheduler(SchedulerConfig(feasible_nodes_to_score=data.draw(st.integers(1, 4))))
    scheduler.set_world(world.nodes, world.stations, world.contacts)
    result = scheduler.run_cycle(pending, now=BASE)
    rejected = {u.request: u.summary for u in (*result.unschedulable, *result.pending)}
    assert len(result.placed) + len(rejected) == len(pending)
    assert all(u.summary for u in (*result.unschedulable, *result.pending))
    assert validate(document(scheduler, world, pending, rejected)) == []


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_cycles_with_releases_and_preemption_stay_valid(data: st.DataObject) -> None:
    world = data.draw(worlds(nodes_max=2))
    scheduler = Scheduler()
    scheduler.set_world(world.nodes, world.stations, world.contacts)
    everything: list[Request] = []
    pending: list[Request] = []
    now = BASE
    started: dict[str, int] = {}
    for cycle in range(3):
        priorities = (0, 4) if cycle == 0 else (3, 9)
        arrivals = data.draw(
            requests(world, count_max=16, prefix=f"c{cycle}-", priorities=priorities)
        )
        everything += arrivals
        pending = [*pending, *arrivals]
        before = {p.request: p for p in scheduler.placements()}
        result = scheduler.run_cycle(pending, now=now)
        for request_id in result.displaced:
            previous = before[request_id]
            assert previous.uplink.at > now, "a started request was displaced"
        for placement in scheduler.placements():
            if placement.uplink.at <= now:
                started.setdefault(placement.request, placement.start)
        for request_id, start in started.items():
            kept = scheduler.placement(request_id)
            assert kept is None or kept.start == start, "a started placement moved"
        waiting = {u.request for u in result.pending}
        pending = [r for r in everything if r.id in waiting]
        event(f"placed {min(len(result.placed), 5)}+, displaced {bool(result.displaced)}")
        assert validate(document(scheduler, world, everything)) == []
        for placement in scheduler.placements():
            if data.draw(st.booleans()):
                assert scheduler.release(placement.request)
                assert not scheduler.release(placement.request)
        now += data.draw(st.integers(0, HORIZON // 4))
    scheduler.prune(now)
    assert validate(document(scheduler, world, everything)) == []
