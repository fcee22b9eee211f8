"""The scheduler runtime: the state kept across cycles and the operations on it.

Owns: `Scheduler` (the world, the bookings, the node rotation, remembered failures) and
`SchedulerConfig`; for one request, the walk: run the pre-filters, then candidate nodes from a
rotating offset through Filter and Fit until `feasible_nodes_to_score` fit (or
`nodes_to_examine_max` were examined, or `nodes_to_examine_once_fitting_max` once one fits),
score those, reserve the best; and applying preemption (preemption.py) and repacking
(repack.py) to the timelines. cycle.py orders a cycle's requests and sorts their outcomes.

Does not own: the database, gRPC, the clock (callers pass `now`), tokens, or APScheduler.
The caller stores placements, calls `place_existing` for each at start-up, `release` when a
request completes, fails or is cancelled, `add_contacts` as the horizon rolls,
`replace_contacts` when known contacts move or vanish, `set_node_state`, and `prune`: each
an update in place, never a rebuild of the world.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from orbitq.services.scheduler.costs import downlink_seconds, uplink_seconds
from orbitq.services.scheduler.cycle import (
    RUNTIME,
    Budget,
    Cycle,
    CycleResult,
    Outcome,
    check_partition,
)
from orbitq.services.scheduler.framework import (
    Booking,
    Code,
    Draft,
    Framework,
    Profile,
    RequestContext,
    Segment,
    Status,
)
from orbitq.services.scheduler.model import (
    Contact,
    Node,
    NodeState,
    Placement,
    Request,
    Station,
)
from orbitq.services.scheduler.ordering import queue_key
from orbitq.services.scheduler.preemption import (
    DISPLACEMENTS_PER_CYCLE_MAX,
    PREEMPTION_ATTEMPTS_PER_CYCLE_MAX,
    PREEMPTION_NODES_MAX,
    Candidate,
    dry_run,
    eligible_victims,
)
from orbitq.services.scheduler.registry import default_profile
from orbitq.services.scheduler.repack import (
    REPACK_ATTEMPTS_PER_CYCLE_MAX,
    REPACK_NODES_MAX,
    LinkIndex,
    in_the_way,
)
from orbitq.services.scheduler.world import WORLD_NODES_MAX, NodeInfo, World

REASON_NOT_EXAMINED = "not examined this cycle"
REASON_UNKNOWN_NODE = "placement on an unknown node"
REASON_UNKNOWN_CONTACT = "placement uses an unknown contact"
REASON_WRONG_CONTACT = "placement segment outside a contact of its node"
REASON_ALREADY_PLACED = "request already placed"
CYCLE_REQUESTS_MAX = 200_000
FAILED_RETRY_CYCLES_MAX = 4  # a request every node turned away is walked again within this
STREAK_MAX = 16
BLOCKED_NODES_MAX = 32  # nodes remembered per request as candidates for preemption and repacking
FEASIBLE_NODES_TO_SCORE = 8
NODES_TO_EXAMINE_ONCE_FITTING_MAX = 64
DISPLACE_GUARD_SECONDS_MAX = 86_400
UPLINK_NOTICE_SECONDS_MAX = 3_600
# A cycle computes at its `now` and commits moments later: with a notice, a pull promises only
# the notice less this (PullTickets' `next_pull_at`), so a cycle must commit within it.
UPLINK_NOTICE_MARGIN_SECONDS = 30
REPACK_EARLIER_TRIES_PER_CYCLE_MAX = (
    16  # repacking dry runs per cycle that move announced placements
)
TAKES_PER_REQUEST_MAX = 2  # announced placements taken away from one request (no ping-pong)


@dataclass(frozen=True)
class SchedulerConfig:
    """Bounds and knobs of the runtime."""

    feasible_nodes_to_score: int = FEASIBLE_NODES_TO_SCORE
    """Stop walking nodes once this many fit; score only those (Kubernetes' idea)."""
    nodes_to_examine_max: int = WORLD_NODES_MAX
    """Give up on a request for this cycle after examining this many nodes."""
    nodes_to_examine_once_fitting_max: int = NODES_TO_EXAMINE_ONCE_FITTING_MAX
    """Once a node fits, stop after examining this many in all, even with fewer than
    `feasible_nodes_to_score` fitting: when most nodes are blocked (a saturated station) the
    search for more is what costs, and the first fit is already a valid placement."""
    cycle_requests_max: int = CYCLE_REQUESTS_MAX
    """Requests tried per cycle; the rest stay pending (bounds a cycle's duration)."""
    preemption: bool = True
    displacements_per_cycle_max: int = DISPLACEMENTS_PER_CYCLE_MAX
    preemption_attempts_per_cycle_max: int = PREEMPTION_ATTEMPTS_PER_CYCLE_MAX
    preemption_nodes_max: int = PREEMPTION_NODES_MAX
    rotate: bool = True
    """Start each request's walk where the previous one stopped (spreads load)."""
    repack_attempts_per_cycle_max: int = REPACK_ATTEMPTS_PER_CYCLE_MAX
    """Requests that may move placements to make room, per cycle (0 disables)."""
    repack_nodes_max: int = REPACK_NODES_MAX
    repack_earlier: bool = True
    """Repacking may also move placements announced in earlier cycles (each is reported in
    `CycleResult.moved`), not only this cycle's."""
    repack_earlier_tries_per_cycle_max: int = REPACK_EARLIER_TRIES_PER_CYCLE_MAX
    """Repacking dry runs per cycle that would move announced placements."""
    takes_per_request_max: int = TAKES_PER_REQUEST_MAX
    """How often one request's announced placement may be taken away (preempted or moved)
    while this scheduler runs: no request is shuffled without end."""
    displace_guard_seconds: int = 0
    """A placement whose uplink begins by now + this is never displaced nor moved: its
    ticket may already be aboard. The broker sets it to the ticket pull lead plus the contact
    tolerance plus a margin for the cycle's own duration (docs/scheduler.md, "The online
    policy"); 0 protects only placements whose uplink has begun."""
    agents_required: bool = False
    """Only nodes with an enrolled agent take new work (the `node_agent` filter)."""
    uplink_notice_seconds: int = 0
    """Nothing of a request is placed before now + this (its uplink included): the notice
    node agents are given of new work, so a pull may tell an agent that nothing new can be
    due for it sooner (PullTickets' `next_pull_at`; docs/agent.md, "Pulling less"). 0: none."""

    def __post_init__(self) -> None:
        assert 1 <= self.feasible_nodes_to_score <= WORLD_NODES_MAX
        assert 1 <= self.nodes_to_examine_max <= WORLD_NODES_MAX
        assert self.feasible_nodes_to_score <= self.nodes_to_examine_once_fitting_max
        assert 1 <= self.cycle_requests_max <= CYCLE_REQUESTS_MAX
        assert 0 <= self.displacements_per_cycle_max <= 10_000
        assert 0 <= self.preemption_attempts_per_cycle_max <= 100_000
        assert 1 <= self.preemption_nodes_max <= WORLD_NODES_MAX
        assert 0 <= self.repack_attempts_per_cycle_max <= 100_000
        assert 1 <= self.repack_nodes_max <= WORLD_NODES_MAX
        assert 0 <= self.displace_guard_seconds <= DISPLACE_GUARD_SECONDS_MAX
        assert 0 <= self.uplink_notice_seconds <= UPLINK_NOTICE_SECONDS_MAX
        assert 0 <= self.takes_per_request_max <= 100
        assert 0 <= self.repack_earlier_tries_per_cycle_max <= 100_000


@dataclass(frozen=True, slots=True)
class _Failure:
    """A request every node turned away, and the world generation it was tried against."""

    generation: int
    request: Request
    counts: dict[tuple[str, str], int]
    blocked: list[int]
    bookings_version: int  # placements made so far (new placements are new victims)
    cycle: int  # the cycle of the walk
    streak: int  # complete walks in a row that found nothing

    def holds(self, scheduler: Scheduler) -> bool:
        """Whether walking the nodes again now is known, or bet, to fail again.

        Known: nothing that frees capacity or adds contacts happened since every node turned
        the request away, and time only takes options away. Bet: something did, but the last
        `streak` walks all failed; wait 1, 2, 4... up to FAILED_RETRY_CYCLES_MAX cycles before
        the next (Kubernetes' backoff for unschedulable pods, in cycles)."""
        if self.generation == scheduler._generation:
            return True
        wait = min(FAILED_RETRY_CYCLES_MAX, 1 << (self.streak - 1))
        return scheduler._cycles - self.cycle < wait


class Scheduler:
    """The placement engine. Not thread-safe: one caller (the scheduler job) drives it."""

    def __init__(self, config: SchedulerConfig | None = None, profile: Profile | None = None):
        self.config = config or SchedulerConfig()
        self._profile_given = profile
        self._framework = Framework(profile or self._default_profile())
        self.world = World([], [])
        self._bookings: dict[str, Booking] = {}
        self._by_node: dict[int, dict[str, Booking]] = {}
        self._next_start = 0
        self._all_nodes: list[int] = []
        self._generation = 0  # bumped by every change that can make a failed request fit
        self._now = 0  # the latest `now` a cycle ran at
        self._failed: dict[str, _Failure] = {}
        self._bookings_version = 0
        self._links = LinkIndex(0)
        # How often each request's announced placement was taken away (preempted or moved):
        # at most `takes_per_request_max` while this scheduler runs (no ping-pong;
        # docs/scheduler.md, "The online policy"). Kept for booked and pending requests only.
        self._taken: dict[str, int] = {}
        self._cycles = 0  # cycles run, for retry backoff

    def _default_profile(self) -> Profile:
        return default_profile(agents_required=self.config.agents_required)

    # -- world -------------------------------------------------------------------------

    def set_world(
        self, nodes: Sequence[Node], stations: Sequence[Station], contacts: Iterable[Contact]
    ) -> None:
        """Start afresh: the given world, no placements (then `place_existing` each stored one)."""
        self._framework = Framework(self._profile_given or self._default_profile())
        self.world = World(nodes, stations)
        self.world.add_contacts(contacts)
        self._bookings = {}
        self._by_node = {}
        self._links = LinkIndex(len(stations))
        self._taken = {}
        self._next_start = 0
        self._all_nodes = list(range(len(nodes)))
        self._generation += 1
        self._failed = {}

    def add_contacts(self, contacts: Iterable[Contact]) -> int:
        """Add newly computed contacts (known ids with equal values are skipped)."""
        added = self.world.add_contacts(contacts)
        if added:
            self._generation += 1
        return added

    def replace_contacts(self, removed: Iterable[str], added: Iterable[Contact]) -> tuple[str, ...]:
        """Change the contact plan in place: forget the `removed` ids, then index `added` (a
        moved contact is in both, under its id). Placements using a removed contact come off
        the timelines and go back on if they still fit the new windows; the ids of those that
        no longer fit are returned, released (the caller decides what becomes of them).

        Costs O(the changed nodes' and stations' contacts and bookings), not a rebuild."""
        world = self.world
        gone = {contact_id for contact_id in removed if contact_id in world.contacts}
        new = list(added)
        if not gone and not new:
            return ()
        touched = {world.contacts[contact_id].node for contact_id in gone}
        affected = [
            booking
            for node in sorted(touched)
            for booking in self._by_node.get(node, {}).values()
            if any(segment.contact in gone for segment in booking.segments)
        ]
        # Earlier work first: what has begun is the most expensive to lose.
        affected.sort(key=lambda b: (b.start, -b.request.priority, b.request.id))
        kept = [(booking.request, booking.placement(world)) for booking in affected]
        for booking in affected:
            self._unrecord(booking)
        world.remove_contacts(gone)
        world.add_contacts(new)
        self._generation += 1
        lost = [
            request.id
            for request, placement in kept
            if not self.place_existing(request, placement).ok
        ]
        return tuple(lost)

    def set_node_state(self, node_id: str, state: NodeState, now: int) -> tuple[str, ...]:
        """Change a node's state. When it goes down, its not-yet-started placements are
        released and their request ids returned (pending again); started ones stay until the
        caller releases them (they fail through the node agent)."""
        index = self.world.node_index[node_id]
        info = self.world.nodes[index]
        if info.node.state != state:
            self._generation += 1
        info.node = replace(info.node, state=state)
        if state != "down":
            return ()
        gone = [
            request_id
            for request_id, booking in self._by_node.get(index, {}).items()
            if booking.uplink.start > now
        ]
        for request_id in gone:
            self.release(request_id)
        return tuple(gone)

    # -- placements ----------------------------------------------------------------------

    def place_existing(self, request: Request, placement: Placement) -> Status:
        """Reserve a stored placement (start-up rebuild). Fails, changing nothing, if it no
        longer fits the world (unknown node or contact, or capacity taken)."""
        world = self.world
        if request.id in self._bookings:
            return Status(Code.ERROR, RUNTIME, REASON_ALREADY_PLACED)
        assert placement.request == request.id
        node = world.node_index.get(placement.node)
        if node is None:
            return Status(Code.ERROR, RUNTIME, REASON_UNKNOWN_NODE)
        segments: list[Segment] = []
        pieces = [(placement.uplink.contact, placement.uplink.at, placement.uplink.end)]
        pieces += [(s.contact, s.start, s.end) for s in placement.downlink]
        for contact_id, start, end in pieces:
            ref = world.contacts.get(contact_id)
            if ref is None:
                return Status(Code.ERROR, RUNTIME, REASON_UNKNOWN_CONTACT)
            if ref.node != node or not ref.start <= start < end <= ref.end:
                return Status(Code.ERROR, RUNTIME, REASON_WRONG_CONTACT)
            segments.append(Segment(contact_id, ref.station, start, end))
        booking = Booking(
            request=request,
            node=node,
            start=placement.start,
            end=placement.end,
            finish=placement.finish,
            uplink=segments[0],
            downlink=tuple(segments[1:]),
        )
        status = self._framework.reserve(world, booking)
        if status.ok:
            self._record(booking)
        return status

    def release(self, request_id: str) -> bool:
        """Free a request's placement (completed, cancelled, failed). Idempotent."""
        booking = self._bookings.get(request_id)
        if booking is None:
            return False
        self._unrecord(booking)
        if booking.finish > self._now:
            self._generation += 1  # future capacity came free
        return True

    def placement(self, request_id: str) -> Placement | None:
        booking = self._bookings.get(request_id)
        return booking.placement(self.world) if booking else None

    def placements(self) -> list[Placement]:
        """Every current placement, by request id."""
        return [self._bookings[rid].placement(self.world) for rid in sorted(self._bookings)]

    def placed_requests(self) -> list[Request]:
        return [self._bookings[rid].request for rid in sorted(self._bookings)]

    def prune(self, before: int) -> int:
        """Forget everything over by `before`: placements finished by then, contacts ended,
        timeline history. Keeps memory bounded on a rolling horizon. Returns placements
        dropped (they stay stored by the caller; only the engine forgets them)."""
        done = [rid for rid, booking in self._bookings.items() if booking.finish <= before]
        for request_id in done:
            self.release(request_id)
        for info in self.world.nodes:
            info.cpu.prune(before)
            info.storage.prune(before)
            info.radio.prune(before)
        for station in self.world.stations:
            station.antennas.prune(before)
        self.world.prune_contacts(before)
        self._links.compact()
        return len(done)

    def _record(self, booking: Booking) -> None:
        self._failed.pop(booking.request.id, None)
        self._bookings_version += 1
        self._bookings[booking.request.id] = booking
        self._by_node.setdefault(booking.node, {})[booking.request.id] = booking
        self._links.add(booking)

    def _unrecord(self, booking: Booking) -> None:
        """Take a booking off the books and the timelines (no generation change)."""
        request_id = booking.request.id
        assert self._bookings.pop(request_id) is booking
        del self._by_node[booking.node][request_id]
        self._framework.unreserve(self.world, booking)
        self._links.remove(request_id)

    def _restore(self, booking: Booking) -> None:
        assert self._framework.reserve(self.world, booking).ok, "restoring must succeed"
        self._record(booking)

    # -- one cycle (cycle.py runs it with the methods below) -----------------------------

    def run_cycle(
        self,
        pending: Sequence[Request],
        now: int,
        tenant_usage: Mapping[str, float] | None = None,
    ) -> CycleResult:
        """Try to place every pending request; see the module docstring."""
        ids = {request.id for request in pending}
        if len(ids) != len(pending):
            raise ValueError("pending requests must have unique ids")
        if any(request_id in self._bookings for request_id in ids):
            raise ValueError("a pending request is already placed: release it first")
        if now < self._now:
            self._generation += 1  # time went back: earlier failures prove nothing
        self._now = now
        self._cycles += 1
        result = Cycle(self, now, tenant_usage or {}).run(pending)
        still = {u.request for u in result.pending}
        self._failed = {rid: f for rid, f in self._failed.items() if rid in still}
        self._taken = {
            rid: n for rid, n in self._taken.items() if rid in still or rid in self._bookings
        }
        check_partition(pending, result)
        return result

    def _attempt(self, request: Request, now: int) -> tuple[Outcome, int]:
        """Pre-filter, then walk the nodes (unless a remembered failure still holds)."""
        world, framework = self.world, self._framework
        ctx = RequestContext(
            request=request,
            now=now,
            world=world,
            earliest=max(now + self.config.uplink_notice_seconds, request.not_before),
        )
        total = len(world.nodes)
        status = framework.pre_filter(ctx)
        if not status.ok:
            turned_away = {(status.plugin, status.reason): total}
            return Outcome(None, status.code, turned_away, ctx, False, []), 0
        failure = self._failed.get(request.id)
        if failure is not None and failure.request == request and failure.holds(self):
            # New placements since are new victims for preemption and repacking.
            fresh = failure.bookings_version != self._bookings_version
            again = failure.blocked if fresh else []
            counts = failure.counts
            return Outcome(None, Code.UNSCHEDULABLE, counts, ctx, True, again, True), 0
        return self._walk(ctx)

    def _walk(self, ctx: RequestContext) -> tuple[Outcome, int]:
        """Filter and fit nodes from the rotating offset until enough fit; the best draft."""
        world, framework, config = self.world, self._framework, self.config
        total = len(world.nodes)
        candidates = ctx.candidates if ctx.candidates is not None else self._all_nodes
        count = len(candidates)
        counts: dict[tuple[str, str], int] = {}
        if count < total:
            counts[(ctx.narrowed_by, ctx.narrowed_reason)] = total - count
        offset = self._next_start % count if (config.rotate and count) else 0
        limit = min(count, config.nodes_to_examine_max)
        wanted = config.feasible_nodes_to_score
        enough = config.nodes_to_examine_once_fitting_max
        feasible: list[Draft] = []
        blocked: list[int] = []
        resolvable = False
        nodes = world.nodes
        examined = 0
        for step in range(limit):
            if feasible and examined >= enough:
                break
            position = offset + step
            node = nodes[candidates[position - count if position >= count else position]]
            examined += 1
            status = framework.filter(ctx, node)
            if status.ok:
                draft = self._draft(ctx, node)
                status = framework.fit(ctx, draft)
                if status.ok:
                    feasible.append(draft)
                    if len(feasible) >= wanted:
                        break
                    continue
                if status.code is Code.UNSCHEDULABLE and len(blocked) < BLOCKED_NODES_MAX:
                    blocked.append(node.index)
            key = (status.plugin, status.reason)
            counts[key] = counts.get(key, 0) + 1
            if status.code is not Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                resolvable = True
        if count:
            self._next_start = (offset + examined) % count
        if feasible:
            best = framework.select(ctx, feasible)
            return Outcome(best, Code.SUCCESS, counts, ctx, False, blocked), examined
        complete = examined == count
        if not complete:
            counts[(RUNTIME, REASON_NOT_EXAMINED)] = count - examined
            resolvable = True
        code = Code.UNSCHEDULABLE if resolvable else Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        return Outcome(None, code, counts, ctx, complete, blocked), examined

    def _count_take(self, request_id: str) -> None:
        self._taken[request_id] = self._taken.get(request_id, 0) + 1

    def _placement_of(self, request_id: str) -> Placement:
        return self._bookings[request_id].placement(self.world)

    def _remember_failure(self, outcome: Outcome) -> None:
        """Every node turned the request away: skip its walk until something frees up."""
        request = outcome.ctx.request
        previous = self._failed.get(request.id)
        streak = previous.streak + 1 if previous and previous.request == request else 1
        self._failed[request.id] = _Failure(
            self._generation,
            request,
            outcome.counts,
            outcome.blocked,
            self._bookings_version,
            self._cycles,
            min(streak, STREAK_MAX),
        )

    def _draft(self, ctx: RequestContext, node: NodeInfo) -> Draft:
        request, size = ctx.request, node.node
        rates = (size.uplink_mbps, size.downlink_mbps)
        link = ctx.link_seconds.get(rates)
        if link is None:  # a few distinct radios: compute once per request
            link = (
                uplink_seconds(request.input_mb, rates[0]),
                downlink_seconds(request.output_mb, rates[1]),
            )
            ctx.link_seconds[rates] = link
        return Draft(node, request.run_seconds, link[0], link[1], ctx.earliest)

    def _commit(self, request: Request, draft: Draft) -> Placement:
        booking = Booking.from_draft(request, draft)
        status = self._framework.reserve(self.world, booking)
        assert status.ok, f"a fitted draft must reserve: {status}"
        self._record(booking)
        return booking.placement(self.world)

    def _repack(
        self, ctx: RequestContext, blocked: list[int], usage: Mapping[str, float], cycle: Cycle
    ) -> list[Booking] | None:
        """Make room on up to `repack_nodes_max` of the nodes whose timelines turned the
        request away, by moving the placements in the way that `cycle.movable` allows, if all
        of them can be placed again; returns their new bookings, or None (and the state
        exactly as before)."""
        world, framework = self.world, self._framework
        tried_nodes = 0
        for index in blocked:
            node = world.nodes[index]
            if not framework.filter(ctx, node).ok:
                continue
            on_node = self._by_node.get(node.index, {})
            victims = in_the_way(ctx, node, self._links, on_node, cycle.movable)
            if not victims:
                continue
            announced = sum(1 for victim in victims if not cycle.placed_now(victim))
            if announced:
                # Moving announced placements: within the budget, and a bounded number of
                # dry runs per cycle (each re-places its victims with full walks).
                if announced > cycle.budget.displacements_left or cycle.earlier_repacks_left <= 0:
                    continue
                cycle.earlier_repacks_left -= 1
            tried_nodes += 1
            victims.sort(key=lambda booking: queue_key(booking.request, usage))
            moved = self._try_repack(ctx, node, victims)
            if moved is not None:
                self._generation += 1  # capacity moved: earlier failures prove nothing
                return moved
            if tried_nodes >= self.config.repack_nodes_max:
                break
        return None

    def _try_repack(
        self, ctx: RequestContext, node: NodeInfo, victims: list[Booking]
    ) -> list[Booking] | None:
        for victim in victims:
            self._unrecord(victim)
        draft = self._draft(ctx, node)
        moved: list[Booking] = []
        if self._framework.fit(ctx, draft).ok:
            self._commit(ctx.request, draft)
            for victim in victims:
                outcome, _ = self._attempt(victim.request, ctx.now)
                if outcome.draft is None:
                    break
                self._commit(victim.request, outcome.draft)
                moved.append(self._bookings[victim.request.id])
            else:
                return moved
            for booking in moved:
                self._unrecord(booking)
            self._unrecord(self._bookings[ctx.request.id])
        for victim in victims:
            self._restore(victim)
        return None

    def _preempt(
        self,
        ctx: RequestContext,
        blocked: list[int],
        budget: Budget,
        may_take: Callable[[Booking], bool],
    ) -> tuple[Booking, ...] | None:
        """Dry-run up to `preemption_nodes_max` of the nodes whose timelines turned the
        request away and that hold eligible victims; commit the cheapest. Returns the
        displaced bookings, or None if preemption does not help."""
        world, framework = self.world, self._framework
        best: Candidate | None = None
        tried_nodes = 0
        for index in blocked:
            on_node = self._by_node.get(index)
            if not on_node:
                continue
            node = world.nodes[index]
            if not framework.filter(ctx, node).ok:
                continue
            victims = eligible_victims(ctx, on_node.values(), may_take)
            if not victims:
                continue
            tried_nodes += 1
            found = dry_run(framework, ctx, self._draft(ctx, node), victims)
            if (
                found is not None
                and len(found.victims) <= budget.displacements_left
                and (best is None or found.cost < best.cost)
            ):
                best = found
            if tried_nodes >= self.config.preemption_nodes_max:
                break
        if best is None:
            return None
        for victim in best.victims:
            assert self.release(victim.request.id)
        budget.displacements_left -= len(best.victims)
        self._commit(ctx.request, best.draft)
        return best.victims
