"""The runtime: ordering, fair share, preemption and its bounds, releases, expiry, rebuild."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orbitq.services.scheduler import (
    Code,
    Contact,
    Node,
    Rejection,
    Request,
    Scheduler,
    SchedulerConfig,
    Station,
    Status,
    Unplaced,
)
from orbitq.services.scheduler.cycle import REASON_CYCLE_BUDGET, RUNTIME
from orbitq.services.scheduler.framework import SUCCESS, Booking, Draft, RequestContext
from orbitq.services.scheduler.ordering import queue_key
from orbitq.services.scheduler.plugins import (
    deadline,
    downlink,
    node_resources,
    node_selector,
    station_antennas,
    station_selector,
    uplink,
)
from orbitq.services.scheduler.registry import default_profile
from orbitq.services.scheduler.runtime import REASON_NOT_EXAMINED
from orbitq.services.scheduler.world import NodeInfo, World
from tests.scheduler.schedule_validator import validate
from tests.scheduler.scheduler_worlds import SmallWorld, document

DAY = 86_400


def busy_world(nodes: int = 1, cpu: int = 1000) -> SmallWorld:
    """Nodes with contacts 60 s of every 100 s at a 16-antenna station: links never bind."""
    node_list = [Node(f"n{i}", cpu, 10_000, 80, 8, labels={"i": str(i)}) for i in range(nodes)]
    station = Station("s1", 16, {"country": "NO"})
    contacts = [
        Contact(f"c{i}-{t}", f"n{i}", "s1", t, t + 60)
        for i in range(nodes)
        for t in range(0, DAY, 100)
    ]
    return SmallWorld(node_list, [station], contacts)


def job(rid: str, **fields: object) -> Request:
    base = Request(
        id=rid,
        tenant="t1",
        cpu_millicores=1000,
        run_seconds=600,
        storage_mb=10,
        input_mb=0,
        output_mb=10,
        not_before=0,
        deadline=DAY,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def scheduler_for(world: SmallWorld, **config: object) -> Scheduler:
    scheduler = Scheduler(SchedulerConfig(**config))  # type: ignore[arg-type]
    scheduler.set_world(world.nodes, world.stations, world.contacts)
    return scheduler


def starts(scheduler: Scheduler) -> list[str]:
    """Request ids in order of start."""
    return [p.request for p in sorted(scheduler.placements(), key=lambda p: p.start)]


def test_order_is_priority_then_fair_share_then_deadline_then_submission_then_id() -> None:
    pending = [
        job("a", priority=1),
        job("b", priority=5),
        job("c", priority=5, tenant="heavy"),
        job("d", priority=5, deadline=DAY - 1, tenant="heavy"),
        job("e", priority=5, tenant="heavy", submitted_at=1),
        job("f", priority=5, tenant="heavy", submitted_at=1),
    ]
    usage = {"heavy": 100.0, "t1": 1.0}
    expected = ["b", "d", "c", "e", "f", "a"]
    assert [r.id for r in sorted(pending, key=lambda r: queue_key(r, usage))] == expected
    scheduler = scheduler_for(busy_world())
    result = scheduler.run_cycle(list(reversed(pending)), now=0, tenant_usage=usage)
    assert len(result.placed) == 6
    assert starts(scheduler) == expected


def test_fair_share_gives_the_lighter_tenant_the_scarce_slot() -> None:
    world = busy_world()
    pending = [
        job("heavy-1", tenant="heavy", deadline=800),
        job("light-1", tenant="light", deadline=800),
    ]
    result = scheduler_for(world).run_cycle(pending, 0, {"heavy": 10.0, "light": 2.0})
    assert [p.request for p in result.placed] == ["light-1"]
    assert [u.request for u in result.pending + result.unschedulable] == ["heavy-1"]


def test_deadline_that_can_no_longer_be_met_is_unschedulable_with_its_reason() -> None:
    scheduler = scheduler_for(busy_world())
    result = scheduler.run_cycle([job("late", deadline=DAY)], now=DAY - 600)
    (unplaced,) = result.unschedulable
    assert unplaced.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert unplaced.reasons[0].reason == deadline.REASON_UNMEETABLE
    assert unplaced.summary == "deadline can no longer be met (1 node)"


def test_a_request_larger_than_every_node_is_unschedulable_at_once() -> None:
    scheduler = scheduler_for(busy_world(nodes=3))
    result = scheduler.run_cycle([job("big", cpu_millicores=1001)], now=0)
    (unplaced,) = result.unschedulable
    assert unplaced.summary == f"{node_resources.REASON_CPU_EVERY_NODE} (3 nodes)"
    assert result.nodes_examined == 0


def test_reasons_count_nodes_and_summarise_most_common_first() -> None:
    world = busy_world(nodes=3)
    nodes = [
        world.nodes[0],
        replace(world.nodes[1], cpu_millicores=500),
        replace(world.nodes[2], cpu_millicores=2000),
    ]
    contacts = [c for c in world.contacts if c.node != "n2" or c.start < 1000]
    scheduler = Scheduler()
    scheduler.set_world(nodes, world.stations, contacts)
    request = job("r", cpu_millicores=800, not_before=2000, deadline=3000, output_mb=10)
    result = scheduler.run_cycle([request], now=0)
    assert [p.node for p in result.placed] == ["n0"]
    scheduler.release("r")
    scheduler.set_node_state("n0", "degraded", now=0)
    result = scheduler.run_cycle([request], now=0)
    (unplaced,) = result.pending  # the degraded node may come back: pending, not final
    assert unplaced.code is Code.UNSCHEDULABLE
    assert [(r.plugin, r.nodes) for r in unplaced.reasons] == [
        ("node_resources", 1),
        ("node_state", 1),
        ("uplink", 1),
    ]
    assert unplaced.summary == (
        "cpu larger than the node (1 node); node degraded (1 node); "
        "no uplink contact before the latest start (1 node)"
    )


def test_a_reason_several_plugins_give_is_summarised_once() -> None:
    no_allowed = station_selector.REASON_NO_ALLOWED_CONTACT
    unplaced = Unplaced(
        "r",
        Code.UNSCHEDULABLE,
        (
            Rejection(station_selector.NAME, no_allowed, 20),
            Rejection(uplink.NAME, uplink.REASON_NO_CONTACT, 2),
            Rejection(downlink.NAME, downlink.REASON_NO_CONTACT, 1),
            Rejection(node_resources.NAME, node_resources.REASON_CPU, 1),
            Rejection(downlink.NAME, downlink.REASON_NO_ALLOWED_CONTACT, 1),
            Rejection(uplink.NAME, uplink.REASON_NO_ALLOWED_CONTACT, 1),
        ),
    )
    assert unplaced.summary == (
        f"{no_allowed} (22 nodes); {uplink.REASON_NO_CONTACT} (2 nodes);"
        f" {downlink.REASON_NO_CONTACT} (1 node); {node_resources.REASON_CPU} (1 node)"
    )


def test_every_unplaced_request_is_pending_or_unschedulable_never_lost() -> None:
    world = busy_world(nodes=2)
    pending = [job(f"r{i}", deadline=3000, priority=i % 3) for i in range(20)]
    result = scheduler_for(world).run_cycle(pending, now=0)
    ids = (
        [p.request for p in result.placed]
        + [u.request for u in result.pending]
        + [u.request for u in result.unschedulable]
    )
    assert sorted(ids) == sorted(r.id for r in pending)
    assert all(u.summary for u in result.pending)


def _one_slot_world() -> SmallWorld:
    """One node, one contact before and one after a single 600 s slot."""
    node = Node("n0", 1000, 10_000, 80, 8)
    station = Station("s1", 1)
    contacts = [Contact("up", "n0", "s1", 1000, 1100), Contact("down", "n0", "s1", 1700, 1800)]
    return SmallWorld([node], [station], contacts)


def test_preemption_displaces_lower_priority_not_started_work() -> None:
    world = _one_slot_world()
    scheduler = scheduler_for(world)
    low = job("low", priority=1, deadline=2000)
    high = job("high", priority=7, deadline=2000)
    assert [p.request for p in scheduler.run_cycle([low], now=0).placed] == ["low"]
    result = scheduler.run_cycle([high], now=500)
    assert [p.request for p in result.placed] == ["high"]
    assert result.displaced == ("low",)
    (back,) = result.pending
    assert back.request == "low"
    assert validate(document(scheduler, world, [low, high])) == []


def test_preemption_never_displaces_equal_priority_or_started_work() -> None:
    world = _one_slot_world()
    scheduler = scheduler_for(world)
    assert scheduler.run_cycle([job("low", priority=1, deadline=2000)], now=0).placed
    same = scheduler.run_cycle([job("same", priority=1, deadline=2000)], now=0)
    assert same.displaced == ()
    started = scheduler.run_cycle([job("high", priority=9, deadline=2000)], now=1000)
    assert started.displaced == ()  # the uplink of "low" has begun
    assert scheduler.placement("low") is not None


def test_preemption_is_bounded_per_cycle() -> None:
    world = busy_world(nodes=1, cpu=4000)
    scheduler = scheduler_for(world, displacements_per_cycle_max=2)
    lows = [job(f"low{i}", priority=0, deadline=2000) for i in range(4)]
    assert len(scheduler.run_cycle(lows, now=0).placed) == 4
    # each high request must start by ~400 s and needs two of the four lows gone
    highs = [job(f"high{i}", priority=5, cpu_millicores=2000, deadline=1000) for i in range(2)]
    result = scheduler.run_cycle(highs, now=0)
    assert len(result.displaced) == 2
    assert [p.request for p in result.placed if p.request.startswith("high")] == ["high0"]
    assert [u.request for u in result.pending if u.request.startswith("high")] == ["high1"]
    assert validate(document(scheduler, world, lows + highs)) == []
    # a cycle without a budget displaces nothing
    lows = [job(f"l{i}", priority=0, deadline=2000) for i in range(4)]
    scheduler = scheduler_for(world, displacements_per_cycle_max=0)
    scheduler.run_cycle(lows, now=0)
    assert scheduler.run_cycle(highs, now=0).displaced == ()


def test_displaced_requests_are_replaced_in_the_same_cycle_when_possible() -> None:
    world = busy_world(nodes=1, cpu=2000)
    scheduler = scheduler_for(world)
    low = job("low", priority=0, not_before=100, deadline=4000)  # uplink after now
    assert scheduler.run_cycle([low], now=0).placed
    first = scheduler.placement("low")
    assert first is not None
    filler = job("filler", priority=3, deadline=first.end + 200, not_before=0)
    high = job("high", priority=5, cpu_millicores=2000, deadline=first.end + 200)
    result = scheduler.run_cycle([high, filler], now=0)
    assert "low" in result.displaced
    moved = {p.request: p for p in result.placed}
    assert "high" in moved
    assert "low" in moved
    assert moved["low"].start >= first.start


def test_release_is_idempotent_and_restores_capacity() -> None:
    world = busy_world()
    scheduler = scheduler_for(world)
    result = scheduler.run_cycle([job("a")], now=0)
    (placement,) = result.placed
    assert scheduler.release("a")
    assert not scheduler.release("a")
    assert not scheduler.release("never-placed")
    info = scheduler.world.nodes[0]
    assert info.cpu.times == info.storage.times == info.radio.times == []
    assert scheduler.world.stations[0].antennas.times == []
    again = scheduler.run_cycle([job("a")], now=0)
    assert again.placed == (placement,)


def test_rebuild_from_stored_placements_gives_the_same_state() -> None:
    world = busy_world(nodes=2)
    pending = [job(f"r{i}", priority=i % 4, output_mb=50 * i) for i in range(12)]
    first = scheduler_for(world)
    first.run_cycle(pending, now=0)
    stored = {p.request: p for p in first.placements()}
    second = scheduler_for(world)
    for request in pending:
        if request.id in stored:
            assert second.place_existing(request, stored[request.id]).ok
    assert second.placements() == first.placements()
    for a, b in zip(first.world.nodes, second.world.nodes, strict=True):
        assert (a.cpu.times, a.cpu.levels) == (b.cpu.times, b.cpu.levels)
        assert (a.radio.times, a.storage.levels) == (b.radio.times, b.storage.levels)
    # a stored placement that no longer fits is refused and changes nothing
    request = pending[0]
    clash = replace(stored[request.id], request="clash")
    status = second.place_existing(replace(request, id="clash"), clash)
    assert not status.ok
    assert second.placements() == first.placements()
    assert second.place_existing(request, stored[request.id]).code is Code.ERROR


def test_place_existing_refuses_unknown_contacts_and_nodes() -> None:
    world = busy_world()
    scheduler = scheduler_for(world)
    (placement,) = scheduler.run_cycle([job("a")], now=0).placed
    fresh = scheduler_for(world)
    bad_contact = replace(placement, uplink=replace(placement.uplink, contact="nope"))
    assert fresh.place_existing(job("a"), bad_contact).reason == "placement uses an unknown contact"
    assert fresh.place_existing(job("a"), replace(placement, node="n9")).code is Code.ERROR
    segment = placement.downlink[0]
    gap = segment.start // 100 * 100 + 65  # contacts are 60 s of every 100 s
    moved = replace(segment, start=gap, end=gap + segment.end - segment.start)
    outside = replace(placement, downlink=(moved,))
    assert fresh.place_existing(job("a"), outside).reason == (
        "placement segment outside a contact of its node"
    )


def test_prune_forgets_the_past_and_keeps_the_future() -> None:
    world = busy_world()
    scheduler = scheduler_for(world)
    pending = [job(f"r{i}", not_before=i * 3000, deadline=i * 3000 + 2000) for i in range(5)]
    assert len(scheduler.run_cycle(pending, now=0).placed) == 5
    future = [p for p in scheduler.placements() if p.finish > 7000]
    assert scheduler.prune(7000) == 5 - len(future)
    assert scheduler.placements() == future
    assert all(c.end > 7000 for c in world.contacts if c.id in scheduler.world.contacts)
    assert min(scheduler.world.nodes[0].contact_starts) >= 6940
    assert validate(document(scheduler, world, pending)) == []


def test_node_going_down_hands_back_its_not_started_placements() -> None:
    world = busy_world(nodes=1)
    scheduler = scheduler_for(world)
    scheduler.run_cycle([job("early", deadline=2000), job("late", not_before=5000)], now=0)
    early = scheduler.placement("early")
    assert early is not None
    assert scheduler.set_node_state("n0", "down", now=early.uplink.at) == ("late",)
    assert scheduler.placement("early") is not None
    result = scheduler.run_cycle([job("late", not_before=5000)], now=early.uplink.at)
    assert result.pending[0].reasons[0].reason == "node down"


def test_cycle_budget_and_examination_limit_leave_requests_pending_with_a_reason() -> None:
    world = busy_world(nodes=4)
    scheduler = scheduler_for(world, cycle_requests_max=1)
    result = scheduler.run_cycle([job("a"), job("b")], now=0)
    assert [u.reasons[0].reason for u in result.pending] == [REASON_CYCLE_BUDGET]
    scheduler = scheduler_for(world, nodes_to_examine_max=2, repack_attempts_per_cycle_max=0)
    scheduler.set_node_state("n0", "degraded", now=0)
    scheduler.set_node_state("n1", "degraded", now=0)
    result = scheduler.run_cycle([job("c")], now=0)
    (unplaced,) = result.pending
    assert unplaced.summary == "node degraded (2 nodes); not examined this cycle (2 nodes)"
    assert unplaced.reasons[1] == Rejection(RUNTIME, REASON_NOT_EXAMINED, 2)
    # the walk goes on where it stopped: the next cycle reaches the ready nodes
    assert [p.node for p in scheduler.run_cycle([job("c")], now=0).placed] == ["n2"]


def test_selector_narrowing_is_reported() -> None:
    world = busy_world(nodes=3)
    result = scheduler_for(world).run_cycle(
        [job("a", node_labels={"i": "1"}, cpu_millicores=5000)], now=0
    )
    assert result.unschedulable[0].reasons[0].reason == node_resources.REASON_CPU_EVERY_NODE
    result = scheduler_for(world).run_cycle([job("b", node_labels={"i": "7"})], now=0)
    assert result.unschedulable[0].summary == f"{node_selector.REASON_NO_NODE} (3 nodes)"


def test_antenna_contention_is_explained() -> None:
    node = Node("n0", 4000, 10_000, 8, 8)
    nodes = [node, replace(node, id="n1")]
    station = Station("s1", 1)
    contacts = [
        Contact("u0", "n0", "s1", 0, 100),
        Contact("u1", "n1", "s1", 0, 100),
        Contact("d0", "n0", "s1", 800, 900),
        Contact("d1", "n1", "s1", 800, 900),
        Contact("end", "n0", "s1", 5000, 5001),
    ]
    scheduler = Scheduler()
    scheduler.set_world(nodes, [station], contacts)
    # each needs 100 s of downlink in [800, 900): only one fits
    pending = [job("a", output_mb=100, deadline=1000), job("b", output_mb=100, deadline=1000)]
    result = scheduler.run_cycle(pending, now=0)
    assert len(result.placed) == 1
    (unplaced,) = result.pending
    assert unplaced.summary == f"{station_antennas.REASON_BUSY} (2 nodes)"
    assert downlink.REASON_NO_CONTACT == "no downlink contact before deadline"


def test_same_inputs_same_schedule() -> None:
    world = busy_world(nodes=3)
    pending = [job(f"r{i}", priority=i % 4, tenant=f"t{i % 3}", output_mb=7 * i) for i in range(30)]
    results = [scheduler_for(world).run_cycle(pending, now=0) for _ in range(2)]
    assert results[0] == results[1]


class Approving:
    """A plugin at every extension point that says yes with a Status of its own: equal to
    SUCCESS, but not the same object."""

    name = "approving"

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def _yes(self, point: str) -> Status:
        self.asked.add(point)
        return Status(Code.SUCCESS, self.name, "fine by me")

    def pre_filter(self, ctx: RequestContext) -> Status:
        return self._yes("pre_filter")

    def filter(self, ctx: RequestContext, node: NodeInfo) -> Status:
        return self._yes("filter")

    def fit(self, ctx: RequestContext, draft: Draft) -> Status:
        return self._yes("fit")

    def reserve(self, world: World, booking: Booking) -> Status:
        return self._yes("reserve")

    def unreserve(self, world: World, booking: Booking) -> None:
        pass


def test_success_is_a_code_not_an_object() -> None:
    approving = Approving()
    yes = approving._yes("probe")
    assert yes is not SUCCESS
    assert yes.ok
    standard = default_profile()
    profile = replace(
        standard,
        pre_filters=(*standard.pre_filters, approving),
        filters=(*standard.filters, approving),
        fits=(*standard.fits, approving),
        reserves=(*standard.reserves, approving),
    )
    world = busy_world(nodes=2)
    scheduler = Scheduler(profile=profile)
    scheduler.set_world(world.nodes, world.stations, world.contacts)
    pending = [job("a"), job("b")]
    result = scheduler.run_cycle(pending, now=0)
    assert sorted(p.request for p in result.placed) == ["a", "b"]
    assert result.pending == ()
    assert result.unschedulable == ()
    assert approving.asked == {"probe", "pre_filter", "filter", "fit", "reserve"}
    assert validate(document(scheduler, world, pending)) == []


def test_pending_must_not_repeat_or_be_placed_already() -> None:
    scheduler = scheduler_for(busy_world())
    with pytest.raises(ValueError, match="unique"):
        scheduler.run_cycle([job("a"), job("a")], now=0)
    scheduler.run_cycle([job("a")], now=0)
    with pytest.raises(ValueError, match="already placed"):
        scheduler.run_cycle([job("a")], now=0)


def test_a_request_no_node_fits_is_not_walked_again_until_something_frees_up() -> None:
    world = busy_world(nodes=2)
    scheduler = scheduler_for(world)
    blockers = [job(f"b{i}", cpu_millicores=1000, not_before=100, deadline=1000) for i in range(2)]
    assert len(scheduler.run_cycle(blockers, now=0).placed) == 2
    waiting = job("w", deadline=1000)
    first = scheduler.run_cycle([waiting], now=0)
    assert first.nodes_examined == 2
    again = scheduler.run_cycle([waiting], now=10)
    assert again.nodes_examined == 0  # nothing freed: the walk would fail again
    assert again.pending == first.pending
    scheduler.release("b0")  # future capacity comes free
    placed = scheduler.run_cycle([waiting], now=20)
    assert [p.request for p in placed.placed] == ["w"]
    assert placed.nodes_examined >= 1


def _repack_world(second_pass: bool) -> SmallWorld:
    """One node, one single-antenna station; 100 s downlinks fill a pass."""
    node = Node("n0", 4000, 10_000, 8, 8)
    contacts = [Contact("up", "n0", "s1", 0, 100), Contact("d1", "n0", "s1", 1000, 1100)]
    if second_pass:
        contacts.append(Contact("d2", "n0", "s1", 3000, 3100))
    return SmallWorld([node], [Station("s1", 1)], contacts)


@pytest.mark.parametrize("second_pass", [True, False])
def test_repacking_moves_this_cycles_placements_only_if_all_fit_again(second_pass: bool) -> None:
    world = _repack_world(second_pass)
    first = job("first", priority=5, output_mb=100, deadline=4000)  # flexible, goes first
    tight = job("tight", priority=1, output_mb=100, deadline=1200)  # only fits pass d1
    greedy = scheduler_for(world, repack_attempts_per_cycle_max=0)
    alone = greedy.run_cycle([first, tight], now=0)
    assert [p.request for p in alone.placed] == ["first"]
    assert alone.placed[0].downlink[0].contact == "d1"  # earliest completion took d1
    scheduler = scheduler_for(world)
    result = scheduler.run_cycle([first, tight], now=0)
    assert result.displaced == ()
    if second_pass:
        by_id = {p.request: p for p in result.placed}
        assert sorted(by_id) == ["first", "tight"]
        assert by_id["first"].downlink[0].contact == "d2"
        assert by_id["tight"].downlink[0].contact == "d1"
    else:  # nobody loses a placement: the first request keeps d1
        assert result.placed == alone.placed
        assert [u.request for u in result.pending] == ["tight"]
        info = scheduler.world.nodes[0]
        other = greedy.world.nodes[0]
        assert (info.cpu.times, info.radio.times) == (other.cpu.times, other.radio.times)
    assert validate(document(scheduler, world, [first, tight])) == []
