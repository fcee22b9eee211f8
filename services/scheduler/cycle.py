"""One scheduling cycle: the queue, the outcomes, and the per-cycle bounds.

Owns: `Cycle` — pop pending requests in queue order (ordering.py), try each (the scheduler's
walk), else preemption within `Budget`, else repacking, and sort every request into exactly one
of placed, unschedulable (final: the caller voids its reservation) or pending (retry next
cycle), with per-plugin reasons (`Unplaced`, `Rejection`); then a sweep that gives the waiting
requests another repacking attempt. Also `CycleResult`, what the caller gets back, and the
online policy's rule of which placements a cycle may take away (`may_take`, `movable`): this
cycle's own, freely; an announced one only if its ticket cannot be aboard (its uplink begins
after now + `displace_guard_seconds`), it was taken away fewer than `takes_per_request_max`
(2) times before, and the per-cycle displacement budget allows.

Does not own: node walks, timelines or bookings (runtime.py), or any I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orbitq.services.scheduler.framework import Booking, Code, Draft, RequestContext
from orbitq.services.scheduler.model import Placement, Request
from orbitq.services.scheduler.ordering import QueueKey, queue_key

if TYPE_CHECKING:
    from orbitq.services.scheduler.runtime import Scheduler, SchedulerConfig

RUNTIME = "runtime"
REASON_CYCLE_BUDGET = "cycle budget reached"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One reason a request was turned away, and by how many nodes."""

    plugin: str
    reason: str
    nodes: int


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A request the cycle did not place, with why."""

    request: str
    code: Code
    reasons: tuple[Rejection, ...]

    @property
    def summary(self) -> str:
        """One line, most common reason first: 'no downlink ... (5,812 nodes); cpu ...'.

        A reason given by several plugins (the station selector, uplink and downlink all find
        'no contact with an allowed station') is counted once with their nodes added up, as
        Kubernetes' FitError counts reasons; ties keep the order of `reasons`."""
        nodes: dict[str, int] = {}
        for rejection in self.reasons:
            nodes[rejection.reason] = nodes.get(rejection.reason, 0) + rejection.nodes
        ordered = sorted(nodes.items(), key=lambda item: -item[1])  # stable
        return "; ".join(
            f"{reason} ({count:,} node{'' if count == 1 else 's'})" for reason, count in ordered
        )


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did. Every pending request is in exactly one of placed / unschedulable /
    pending; `displaced` lists requests whose earlier placement this cycle removed (each is
    also in one of the three: placed again, or back to pending, or unschedulable). `moved`
    is the part of `displaced` that repacking took from an announced placement and placed
    again at once (each is also in `placed`); the rest were preempted."""

    placed: tuple[Placement, ...]
    displaced: tuple[str, ...]
    unschedulable: tuple[Unplaced, ...]
    pending: tuple[Unplaced, ...]
    nodes_examined: int
    moved: tuple[str, ...] = ()


@dataclass(slots=True)
class Outcome:
    """What one walk (or a remembered one) found for a request."""

    draft: Draft | None
    code: Code
    counts: dict[tuple[str, str], int]
    ctx: RequestContext
    complete: bool  # every candidate node was examined and none fits
    blocked: list[int]  # nodes whose timelines (not their geometry) turned the request away
    remembered: bool = False  # the outcome of an earlier walk (runtime._Failure.holds)


class Cycle:
    """One cycle's queue and outcomes; the scheduler's state is changed only through it."""

    def __init__(self, scheduler: Scheduler, now: int, usage: Mapping[str, float]) -> None:
        self.scheduler = scheduler
        self.now = now
        self.usage = usage
        self.config = scheduler.config
        self.queue: list[tuple[QueueKey, Request]] = []
        self.placed: dict[str, Placement] = {}
        self.displaced: list[str] = []
        self.moved: list[str] = []
        self.entered: set[str] = set()
        self.final: list[Unplaced] = []
        self.waiting: dict[str, tuple[Unplaced, Request]] = {}
        self.budget = Budget(scheduler.config)
        self.repacks_left = scheduler.config.repack_attempts_per_cycle_max
        self.earlier_repacks_left = scheduler.config.repack_earlier_tries_per_cycle_max
        self.examined = 0

    def run(self, pending: Sequence[Request]) -> CycleResult:
        self.entered = {r.id for r in pending}
        self.queue = [(queue_key(r, self.usage), r) for r in pending]
        heapq.heapify(self.queue)
        tried = 0
        for _ in range(len(pending) + self.config.displacements_per_cycle_max):
            if not self.queue:
                break
            _, request = heapq.heappop(self.queue)
            if tried >= self.config.cycle_requests_max:
                reason = Rejection(RUNTIME, REASON_CYCLE_BUDGET, 0)
                self.waiting[request.id] = (
                    Unplaced(request.id, Code.UNSCHEDULABLE, (reason,)),
                    request,
                )
                continue
            tried += 1
            self._one(request)
        assert not self.queue, "the loop bound covers every request and displacement"
        self._sweep()
        return CycleResult(
            placed=tuple(self.placed.values()),
            displaced=tuple(self.displaced),
            unschedulable=tuple(self.final),
            pending=tuple(unplaced for unplaced, _ in self.waiting.values()),
            nodes_examined=self.examined,
            moved=tuple(self.moved),
        )

    # -- the online policy's rule ------------------------------------------------------

    def placed_now(self, booking: Booking) -> bool:
        """Placed by this cycle: nobody has seen it yet."""
        return booking.request.id in self.placed

    def may_take(self, booking: Booking) -> bool:
        """Whether this cycle may take the booking away (preemption or repacking): its own
        placements, always; an announced one only if its uplink begins after now + the guard
        (no ticket can have been pulled) and it was taken away fewer than
        `takes_per_request_max` times before (no ping-pong)."""
        if self.placed_now(booking):
            return True
        return (
            booking.uplink.start > self.now + self.config.displace_guard_seconds
            and self.scheduler._taken.get(booking.request.id, 0) < self.config.takes_per_request_max
        )

    def movable(self, booking: Booking) -> bool:
        """Whether repacking may move the booking."""
        if self.placed_now(booking):
            return True
        return (
            self.config.repack_earlier
            and self.budget.displacements_left > 0
            and self.may_take(booking)
        )

    def moved_announced(self, bookings: Sequence[Booking]) -> None:
        """Record announced placements repacking moved (and placed again): they are displaced
        and moved, and count against the budget and the request's takes."""
        for booking in bookings:
            request_id = booking.request.id
            if request_id in self.entered or request_id in self.displaced:
                continue  # this cycle's own, or already counted
            self.scheduler._count_take(request_id)
            self.displaced.append(request_id)
            self.moved.append(request_id)
            self.budget.displacements_left -= 1

    def _one(self, request: Request) -> None:
        """Place one request: normally, else by preemption, else by repacking this cycle."""
        scheduler = self.scheduler
        outcome, examined = scheduler._attempt(request, self.now)
        self.examined += examined
        if outcome.draft is not None:
            self.placed[request.id] = scheduler._commit(request, outcome.draft)
            return
        if outcome.blocked and self.budget.may_preempt(request, scheduler._bookings):
            victims = scheduler._preempt(outcome.ctx, outcome.blocked, self.budget, self.may_take)
            if victims is not None:
                self.placed[request.id] = scheduler._placement_of(request.id)
                for victim in victims:
                    victim_id = victim.request.id
                    if victim_id not in self.placed and victim_id not in self.entered:
                        self.scheduler._count_take(victim_id)  # an announced placement
                    if victim_id not in self.displaced:
                        self.displaced.append(victim_id)
                    if victim_id in self.moved:  # moved earlier this cycle, now preempted
                        self.moved.remove(victim_id)
                    self.placed.pop(victim_id, None)
                    key = queue_key(victim.request, self.usage)
                    heapq.heappush(self.queue, (key, victim.request))
                return
        if outcome.blocked and self._repack(outcome.ctx, outcome.blocked):
            return
        unplaced = Unplaced(request.id, outcome.code, _rejections(outcome.counts))
        if outcome.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            self.final.append(unplaced)
        else:
            self.waiting[request.id] = (unplaced, request)
        if outcome.complete and not outcome.remembered:
            scheduler._remember_failure(outcome)

    def _repack(self, ctx: RequestContext, blocked: list[int]) -> bool:
        if self.repacks_left <= 0 or not self.scheduler._bookings:
            return False
        self.repacks_left -= 1
        moved = self.scheduler._repack(ctx, blocked, self.usage, self)
        if moved is None:
            return False
        request_id = ctx.request.id
        self.moved_announced([b for b in moved if b.request.id not in self.placed])
        self.placed[request_id] = self.scheduler._placement_of(request_id)
        for booking in moved:
            self.placed[booking.request.id] = booking.placement(self.scheduler.world)
        return True

    def _sweep(self) -> None:
        """Requests placed later in the cycle may be movable out of an earlier one's way:
        give the waiting ones, in queue order, another repacking attempt."""
        if not self.scheduler._bookings:
            return
        for request_id, (unplaced, request) in list(self.waiting.items()):
            if self.repacks_left <= 0:
                break
            if unplaced.reasons and unplaced.reasons[0].reason == REASON_CYCLE_BUDGET:
                continue
            outcome, examined = self.scheduler._attempt(request, self.now)
            self.examined += examined
            if outcome.draft is not None:
                self.placed[request_id] = self.scheduler._commit(request, outcome.draft)
            elif not (outcome.blocked and self._repack(outcome.ctx, outcome.blocked)):
                continue
            del self.waiting[request_id]


class Budget:
    """Per-cycle preemption bounds."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.enabled = config.preemption
        self.displacements_left = config.displacements_per_cycle_max
        self.attempts_left = config.preemption_attempts_per_cycle_max

    def may_preempt(self, request: Request, bookings: Mapping[str, Booking]) -> bool:
        if not self.enabled or self.displacements_left <= 0 or self.attempts_left <= 0:
            return False
        if request.priority == 0 or not bookings:
            return False
        self.attempts_left -= 1
        return True


def _rejections(counts: Mapping[tuple[str, str], int]) -> tuple[Rejection, ...]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(Rejection(plugin, reason, nodes) for (plugin, reason), nodes in ordered)


def check_partition(pending: Sequence[Request], result: CycleResult) -> None:
    """Every request that entered the cycle leaves it exactly once."""
    entered = {request.id for request in pending} | set(result.displaced)
    left = (
        [p.request for p in result.placed]
        + [u.request for u in result.unschedulable]
        + [u.request for u in result.pending]
    )
    assert len(left) == len(set(left)), "a request left the cycle twice"
    assert set(left) == entered, "a request was lost by the cycle"
