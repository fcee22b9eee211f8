"""Preemption: which placed-but-not-started requests a higher-priority request may displace.

Owns: the victim rule and the dry run on one node. A victim has strictly lower priority than
the preemptor and has not started: its uplink has not begun (`uplink.at > now`), and the
cycle's rule (cycle.py `Cycle.may_take`) allows it: no ticket can be aboard (the uplink begins
after now + the guard) and it was not taken away too often before. The dry run removes every
eligible victim on the node whose booking overlaps the preemptor's window, fits the
preemptor, reserves it, then puts back
("reprieves") as many victims as still fit, highest priority first; only those that cannot
come back must go. It then restores the node exactly as it was: choosing among nodes and
committing is the runtime's job.

Does not own: the per-cycle bounds (`DISPLACEMENTS_PER_CYCLE_MAX` and friends are enforced by
the runtime), re-queueing the displaced, or node choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orbitq.services.scheduler.framework import Booking, Draft, Framework, RequestContext

DISPLACEMENTS_PER_CYCLE_MAX = 64  # requests sent back to pending by preemption per cycle
PREEMPTION_NODES_MAX = 16  # nodes dry-run per preempting request
PREEMPTION_ATTEMPTS_PER_CYCLE_MAX = 256  # requests allowed to try preemption per cycle


@dataclass(frozen=True, slots=True)
class Candidate:
    """A node on which the preemptor fits once `victims` are displaced."""

    draft: Draft
    victims: tuple[Booking, ...]

    @property
    def cost(self) -> tuple[int, int, int]:
        """Lower is better: the highest victim priority, then how many, then their sum."""
        priorities = [victim.request.priority for victim in self.victims]
        return (max(priorities, default=-1), len(priorities), sum(priorities))


def eligible_victims(
    ctx: RequestContext, bookings: Iterable[Booking], may_take: Callable[[Booking], bool]
) -> list[Booking]:
    """Bookings the request may displace, lowest priority (then latest start) first: of
    strictly lower priority, in its window, not started, and that the cycle's rule
    (`may_take`: no ticket aboard, not taken too often before) allows."""
    request = ctx.request
    victims = [
        booking
        for booking in bookings
        if booking.request.priority < request.priority
        and booking.uplink.start > ctx.now
        and booking.finish > ctx.earliest
        and booking.uplink.start < request.deadline
        and may_take(booking)
    ]
    victims.sort(key=lambda b: (b.request.priority, -b.start, b.request.id))
    return victims


def dry_run(
    framework: Framework, ctx: RequestContext, draft: Draft, victims: list[Booking]
) -> Candidate | None:
    """Fit `draft` with `victims` removed and reprieve what still fits; restores the node."""
    world = ctx.world
    assert victims
    for victim in victims:
        framework.unreserve(world, victim)
    candidate: Candidate | None = None
    if framework.fit(ctx, draft).ok:
        booking = Booking.from_draft(ctx.request, draft)
        assert framework.reserve(world, booking).ok, "a fitted draft reserves"
        kept: list[Booking] = []
        gone: list[Booking] = []
        for victim in sorted(victims, key=lambda b: (-b.request.priority, b.start, b.request.id)):
            (kept if framework.reserve(world, victim).ok else gone).append(victim)
        framework.unreserve(world, booking)
        for victim in kept:
            framework.unreserve(world, victim)
        candidate = Candidate(draft, tuple(gone))
    for victim in victims:
        assert framework.reserve(world, victim).ok, "restoring a dry run must succeed"
    return candidate
