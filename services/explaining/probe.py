"""Questions put to a scratch scheduler: where would this request go now, and if nowhere,
what is the smallest change that makes it fit.

Owns: `probe` (one scheduling cycle of just this request on the scratch copy, its placement
taken back at once), `later_deadline` (the least extra time before the deadline that makes it
fit: a bounded search) and `stations_to_allow` (stations outside the request's selector whose
use makes it fit). Every answer is a real placement the scheduler's plugins accepted on the
copy, never an estimate.

The deadline search: the request cannot fit with its deadline d; if it fits with d + B (B the
search bound: at most SEARCH_SECONDS_MAX, no further than the known contacts reach, no further
than a Submit accepts), the least fitting extra time is found by bisection over whole minutes
(feasibility only grows with the deadline: every placement that meets d meets d + x). At most
PROBES_MAX cycles in all.

Does not own: the copy (scratch.py), authorisation or wording (service.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from orbitq.services.scheduler import Code, Placement, Rejection, Request, Scheduler

SEARCH_SECONDS_MAX = 7 * 86_400
SEARCH_STEP_SECONDS = 60
PROBES_MAX = 24


@dataclass(frozen=True)
class Probe:
    """One cycle's verdict on one request: a placement, or the plugins' reasons."""

    placement: Placement | None
    reasons: tuple[Rejection, ...]
    summary: str
    code: Code
    nodes_examined: int


def probe(scheduler: Scheduler, request: Request, now: int) -> Probe:
    """Run one cycle of `request` alone on the scratch copy and take back what it placed."""
    result = scheduler.run_cycle([request], now)
    assert not result.displaced, "probes never preempt"
    if result.placed:
        (placement,) = result.placed
        scheduler.release(request.id)
        return Probe(placement, (), "", Code.SUCCESS, result.nodes_examined)
    (unplaced,) = result.unschedulable or result.pending
    return Probe(None, unplaced.reasons, unplaced.summary, unplaced.code, result.nodes_examined)


@dataclass(frozen=True)
class DeadlineSearch:
    """The least extra seconds (whole minutes) that fit, None if none within `searched`."""

    extra_seconds: int | None
    searched_seconds: int
    placement: Placement | None
    probes: int


def later_deadline(
    scheduler: Scheduler, request: Request, now: int, contacts_until: int, deadline_max: int
) -> DeadlineSearch:
    bound = min(SEARCH_SECONDS_MAX, deadline_max - request.deadline)
    # Past the known contacts a later deadline gains no contact to downlink in.
    bound = min(bound, contacts_until - request.deadline)
    if bound <= 0:
        return DeadlineSearch(None, max(bound, 0), None, 0)
    steps = -(-bound // SEARCH_STEP_SECONDS)

    def extra(step: int) -> int:
        return min(step * SEARCH_STEP_SECONDS, bound)

    def attempt(step: int) -> Placement | None:
        later = replace(request, deadline=request.deadline + extra(step))
        return probe(scheduler, later, now).placement

    probes = 1
    best = attempt(steps)
    if best is None:
        return DeadlineSearch(None, bound, None, probes)
    low, high = 0, steps  # low does not fit (the request as it is), high fits
    while high - low > 1 and probes < PROBES_MAX:
        middle = (low + high) // 2
        probes += 1
        found = attempt(middle)
        if found is None:
            low = middle
        else:
            high, best = middle, found
    return DeadlineSearch(extra(high), bound, best, probes)


def stations_to_allow(
    scheduler: Scheduler, request: Request, now: int
) -> tuple[tuple[str, ...], Placement | None]:
    """Stations outside the request's selector that make it fit when allowed too (found by
    placing it with every station allowed, then checked by placing it with just those
    added); () when the selector is not what stands in the way."""
    if not request.station_ids and not request.station_countries:
        return (), None
    anywhere = probe(scheduler, replace(request, station_ids=(), station_countries=()), now)
    if anywhere.placement is None:
        return (), None
    world = scheduler.world
    mask = world.stations_mask(request.station_ids, request.station_countries)
    allowed = [info.station.id for info in world.stations if (mask >> info.index) & 1]
    used = [anywhere.placement.uplink.station, *(s.station for s in anywhere.placement.downlink)]
    extra = tuple(sorted({station for station in used if station not in allowed}))
    if not extra:
        return (), None
    widened = replace(request, station_ids=(*allowed, *extra), station_countries=())
    checked = probe(scheduler, widened, now)
    if checked.placement is None:
        return (), None
    return extra, checked.placement
