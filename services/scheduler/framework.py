"""The plugin framework: extension points, statuses and the per-request state plugins share.

Owns: `Status` and its closed set of codes, the one-method plugin protocols, the per-request
context (`RequestContext`, Kubernetes' CycleState), the per-node proposal (`Draft`), the
committed form of a placement (`Booking`), `Profile` (which plugins run, in which order, with
which weights) and `Framework`, which runs one extension point over its plugins.

Does not own: which nodes are tried, in which order, or when to stop (runtime.py), preemption
(preemption.py) or any plugin's logic (plugins/).

Extension points, in the order a request meets them:
- PreFilter(ctx) -> Status: once per request; may narrow the candidate nodes or fill the
  context (allowed stations). Unresolvable here means no node can ever take the request.
- Filter(ctx, node) -> Status: static feasibility of one node (state, selectors, size).
- Fit(ctx, draft) -> Status: time feasibility on one node; each plugin fills its part of the
  draft (uplink, start, downlink). A plugin that finds the draft cannot hold from its current
  start raises `draft.start_min` and clears `draft.start`; the framework then runs the chain
  again, at most `FIT_ROUNDS_MAX` times. Earliest-time search as a fixed point.
- Score(ctx, drafts) -> list[int]: 0..100 per feasible draft, normalised across them; the
  framework sums the weighted scores and takes the best (ties: first in examination order).
- Reserve(world, booking) -> Status / Unreserve(world, booking): check, then commit to the
  timelines; a failed Reserve changes nothing. Unreserve is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple, Protocol

from orbitq.services.scheduler.model import DownlinkSegment, Placement, Request, Uplink
from orbitq.services.scheduler.world import NodeInfo, World

FIT_ROUNDS_MAX = 8
SCORE_MAX = 100
FRAMEWORK = "framework"
REASON_FIT_ROUNDS = f"no stable fit within {FIT_ROUNDS_MAX} rounds"


class Code(IntEnum):
    SUCCESS = 0
    UNSCHEDULABLE = 1  # this node, now; another node, a later cycle or preemption may help
    UNSCHEDULABLE_AND_UNRESOLVABLE = 2  # no change of occupancy (or preemption) can help
    ERROR = 3  # a plugin's own failure


@dataclass(frozen=True, slots=True)
class Status:
    code: Code
    plugin: str = ""
    reason: str = ""
    ok: bool = field(init=False, repr=False, compare=False)
    """code is SUCCESS: a field, not a property (read millions of times per cycle)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.code is Code.SUCCESS)


SUCCESS = Status(Code.SUCCESS)


def unschedulable(plugin: str, reason: str) -> Status:
    return Status(Code.UNSCHEDULABLE, plugin, reason)


def unresolvable(plugin: str, reason: str) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, plugin, reason)


class Segment(NamedTuple):
    """A link segment: [start, end) on contact `contact` at station index `station`."""

    contact: str
    station: int
    start: int
    end: int


@dataclass(slots=True)
class RequestContext:
    """What the plugins know about one request in one cycle (Kubernetes' CycleState).

    Kept deliberately small: the request, the instant, the world, and what pre-filters found.
    """

    request: Request
    now: int
    world: World
    earliest: int  # max(now, not_before): nothing of this request happens before it
    allowed_stations: int = 0  # bitmask over station indices, set by the station selector
    candidates: Sequence[int] | None = None  # node indices a pre-filter narrowed to
    narrowed_by: str = ""  # the pre-filter that narrowed
    narrowed_reason: str = ""
    link_seconds: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    """(uplink, downlink) seconds by (uplink, downlink) rate, filled as nodes are drafted."""


@dataclass(slots=True)
class Draft:
    """A proposal for one request on one node, built up by the Fit plugins."""

    node: NodeInfo
    run_seconds: int
    up_seconds: int
    down_seconds: int
    start_min: int
    start: int = -1
    uplink: Segment | None = None
    downlink: list[Segment] = field(default_factory=list)
    finish: int = -1
    invalidations: int = 0

    @property
    def end(self) -> int:
        return self.start + self.run_seconds

    def invalidate(self, start_min: int) -> None:
        """The draft cannot start before `start_min`: restart the chain from there."""
        assert start_min > self.start_min
        self.start_min = start_min
        self.start = -1
        self.downlink = []
        self.finish = -1
        self.invalidations += 1


@dataclass(frozen=True, slots=True)
class Booking:
    """A placement as committed to the timelines (indices instead of ids)."""

    request: Request
    node: int
    start: int
    end: int
    finish: int
    uplink: Segment
    downlink: tuple[Segment, ...]

    @property
    def segments(self) -> tuple[Segment, ...]:
        return (self.uplink, *self.downlink)

    def placement(self, world: World) -> Placement:
        stations = world.stations
        return Placement(
            request=self.request.id,
            node=world.nodes[self.node].node.id,
            start=self.start,
            end=self.end,
            uplink=Uplink(
                self.uplink.contact,
                stations[self.uplink.station].station.id,
                self.uplink.start,
                self.uplink.end,
            ),
            downlink=tuple(
                DownlinkSegment(s.contact, stations[s.station].station.id, s.start, s.end)
                for s in self.downlink
            ),
        )

    @staticmethod
    def from_draft(request: Request, draft: Draft) -> Booking:
        assert draft.uplink is not None
        assert draft.start >= 0
        assert draft.finish >= draft.end
        return Booking(
            request=request,
            node=draft.node.index,
            start=draft.start,
            end=draft.end,
            finish=draft.finish,
            uplink=draft.uplink,
            downlink=tuple(draft.downlink),
        )


class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, ctx: RequestContext) -> Status: ...


class FilterPlugin(Protocol):
    name: str

    def filter(self, ctx: RequestContext, node: NodeInfo) -> Status: ...


class FitPlugin(Protocol):
    name: str

    def fit(self, ctx: RequestContext, draft: Draft) -> Status: ...


class ScorePlugin(Protocol):
    name: str

    def score(self, ctx: RequestContext, drafts: Sequence[Draft]) -> list[int]: ...


class ReservePlugin(Protocol):
    name: str

    def reserve(self, world: World, booking: Booking) -> Status: ...

    def unreserve(self, world: World, booking: Booking) -> None: ...


@dataclass(frozen=True)
class Profile:
    """The plugins of each extension point, in order, and each score plugin's weight."""

    pre_filters: tuple[PreFilterPlugin, ...]
    filters: tuple[FilterPlugin, ...]
    fits: tuple[FitPlugin, ...]
    scores: tuple[tuple[ScorePlugin, int], ...]
    reserves: tuple[ReservePlugin, ...]

    def __post_init__(self) -> None:
        assert self.fits, "a profile needs at least one fit plugin"
        assert self.reserves, "a profile needs at least one reserve plugin"
        for _, weight in self.scores:
            assert 0 < weight <= 100


class Framework:
    """Runs each extension point of a `Profile`."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def pre_filter(self, ctx: RequestContext) -> Status:
        for plugin in self.profile.pre_filters:
            status = plugin.pre_filter(ctx)
            if not status.ok:
                return status
        return SUCCESS

    def filter(self, ctx: RequestContext, node: NodeInfo) -> Status:
        for plugin in self.profile.filters:
            status = plugin.filter(ctx, node)
            if not status.ok:
                return status
        return SUCCESS

    def fit(self, ctx: RequestContext, draft: Draft) -> Status:
        """Run the fit chain to a fixed point; on success the draft is complete."""
        fits = self.profile.fits
        for _ in range(FIT_ROUNDS_MAX):
            invalidations = draft.invalidations
            for plugin in fits:
                status = plugin.fit(ctx, draft)
                if not status.ok:
                    return status
                if draft.invalidations != invalidations:
                    break  # run the chain again from the new start_min
            if draft.invalidations == invalidations:
                assert draft.start >= 0
                assert draft.uplink is not None
                assert draft.uplink.end <= draft.start
                assert draft.finish >= draft.end
                return SUCCESS
        return unschedulable(FRAMEWORK, REASON_FIT_ROUNDS)

    def select(self, ctx: RequestContext, drafts: Sequence[Draft]) -> Draft:
        """The best draft by weighted score; ties go to the earliest examined."""
        assert drafts
        if len(drafts) == 1 or not self.profile.scores:
            return drafts[0]
        totals = [0] * len(drafts)
        for plugin, weight in self.profile.scores:
            scores = plugin.score(ctx, drafts)
            assert len(scores) == len(drafts)
            for index, value in enumerate(scores):
                assert 0 <= value <= SCORE_MAX, f"{plugin.name} scored {value}"
                totals[index] += weight * value
        best = max(range(len(drafts)), key=lambda index: (totals[index], -index))
        return drafts[best]

    def reserve(self, world: World, booking: Booking) -> Status:
        """Reserve on every plugin or on none (a failure rolls back those done)."""
        done: list[ReservePlugin] = []
        for plugin in self.profile.reserves:
            status = plugin.reserve(world, booking)
            if not status.ok:
                for previous in reversed(done):
                    previous.unreserve(world, booking)
                return status
            done.append(plugin)
        return SUCCESS

    def unreserve(self, world: World, booking: Booking) -> None:
        for plugin in reversed(self.profile.reserves):
            plugin.unreserve(world, booking)
