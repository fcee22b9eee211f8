"""The scheduler's vocabulary: nodes, stations, contacts, requests and placements.

Owns: the immutable value types the placement engine reads and returns, their validation (a
value that breaks a rule raises `ValueError` when it is built, so the engine never sees it) and
the limits on their sizes. Times are integer seconds since the Unix epoch, half-open [start, end).

Does not own: persistence, protobuf conversion, costs (costs.py) or any scheduling decision.

A node's `agent` says whether a node agent is enrolled for it (the `node_agent` filter, used
when usage receipts complete work, gives new work only to such nodes).

Node states: `ready` nodes take new work; `degraded` nodes keep and run what is already placed
on them but take no new work (an operator drains a node this way); `down` nodes take no new
work and the runtime hands back their not-yet-started placements (`Scheduler.set_node_state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

NodeState = Literal["ready", "degraded", "down"]
NODE_STATES: tuple[NodeState, ...] = ("ready", "degraded", "down")

PRIORITY_MAX = 9
ID_LENGTH_MAX = 128
LABELS_MAX = 32
SELECTOR_ITEMS_MAX = 64
DOWNLINK_SEGMENTS_MAX = 16
TIME_MAX = 2**40  # seconds since the epoch; far beyond any horizon, small enough for exact math


def _check_id(kind: str, value: str) -> None:
    if not value or len(value) > ID_LENGTH_MAX:
        raise ValueError(f"{kind} id must be 1..{ID_LENGTH_MAX} characters, got {value!r}")


def _check_time(kind: str, value: int) -> None:
    if not 0 <= value <= TIME_MAX:
        raise ValueError(f"{kind} must be seconds since the epoch in [0, {TIME_MAX}], got {value}")


def _check_interval(kind: str, start: int, end: int) -> None:
    _check_time(f"{kind} start", start)
    _check_time(f"{kind} end", end)
    if start >= end:
        raise ValueError(f"{kind} must end after it starts, got [{start}, {end})")


@dataclass(frozen=True, slots=True)
class Node:
    """A satellite with a computer. Rates are in megabits per second."""

    id: str
    cpu_millicores: int
    storage_mb: int
    downlink_mbps: int
    uplink_mbps: int
    labels: Mapping[str, str] = field(default_factory=dict)
    state: NodeState = "ready"
    agent: bool = False

    def __post_init__(self) -> None:
        _check_id("node", self.id)
        for name in ("cpu_millicores", "storage_mb", "downlink_mbps", "uplink_mbps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"node {self.id}: {name} must be positive")
        if len(self.labels) > LABELS_MAX:
            raise ValueError(f"node {self.id}: at most {LABELS_MAX} labels")
        if self.state not in NODE_STATES:
            raise ValueError(f"node {self.id}: state must be one of {NODE_STATES}")


@dataclass(frozen=True, slots=True)
class Station:
    """A ground station; `antennas` is how many satellites it can talk to at once."""

    id: str
    antennas: int
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id("station", self.id)
        if not 1 <= self.antennas <= 64:
            raise ValueError(f"station {self.id}: antennas must be in 1..64")
        if len(self.labels) > LABELS_MAX:
            raise ValueError(f"station {self.id}: at most {LABELS_MAX} labels")

    @property
    def country(self) -> str:
        return self.labels.get("country", "")


@dataclass(frozen=True, slots=True)
class Contact:
    """A window [start, end) in which `node` can talk to `station` (uplink and downlink)."""

    id: str
    node: str
    station: str
    start: int
    end: int

    def __post_init__(self) -> None:
        _check_id("contact", self.id)
        _check_interval(f"contact {self.id}", self.start, self.end)


@dataclass(frozen=True, slots=True)
class Request:
    """A tenant's workload. Sizes in megabytes; `input_mb` goes up, `output_mb` comes down.

    Selectors: a node must carry every `node_labels` pair and, when `node_ids` is not empty, be
    one of them; every contact used (uplink and downlink) must be at a station in `station_ids`
    (when given) whose `country` label is in `station_countries` (when given).
    """

    id: str
    tenant: str
    cpu_millicores: int
    run_seconds: int
    storage_mb: int
    input_mb: int
    output_mb: int
    not_before: int
    deadline: int
    priority: int = 0
    node_labels: Mapping[str, str] = field(default_factory=dict)
    node_ids: tuple[str, ...] = ()
    station_countries: tuple[str, ...] = ()
    station_ids: tuple[str, ...] = ()
    submitted_at: int = 0

    def __post_init__(self) -> None:
        _check_id("request", self.id)
        _check_id("tenant", self.tenant)
        if self.cpu_millicores < 0 or self.storage_mb < 0:
            raise ValueError(f"request {self.id}: cpu and storage must not be negative")
        if self.input_mb < 0 or self.output_mb < 0:
            raise ValueError(f"request {self.id}: input and output must not be negative")
        if self.run_seconds <= 0:
            raise ValueError(f"request {self.id}: run_seconds must be positive")
        _check_interval(f"request {self.id} window", self.not_before, self.deadline)
        _check_time(f"request {self.id} submitted_at", self.submitted_at)
        if not 0 <= self.priority <= PRIORITY_MAX:
            raise ValueError(f"request {self.id}: priority must be in 0..{PRIORITY_MAX}")
        if len(self.node_labels) > LABELS_MAX:
            raise ValueError(f"request {self.id}: at most {LABELS_MAX} node labels")
        for name in ("node_ids", "station_countries", "station_ids"):
            if len(getattr(self, name)) > SELECTOR_ITEMS_MAX:
                raise ValueError(f"request {self.id}: at most {SELECTOR_ITEMS_MAX} {name}")


@dataclass(frozen=True, slots=True)
class Uplink:
    """The ticket (and input) going up: [at, end) inside `contact`, ending no later than start."""

    contact: str
    station: str
    at: int
    end: int


@dataclass(frozen=True, slots=True)
class DownlinkSegment:
    """A piece of the result coming down: [start, end) inside `contact`."""

    contact: str
    station: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Placement:
    """Where and when a request runs: cpu is held [start, end), storage [start, finish)."""

    request: str
    node: str
    start: int
    end: int
    uplink: Uplink
    downlink: tuple[DownlinkSegment, ...] = ()

    def __post_init__(self) -> None:
        _check_interval(f"placement {self.request}", self.start, self.end)
        _check_interval(f"placement {self.request} uplink", self.uplink.at, self.uplink.end)
        if self.uplink.end > self.start:
            raise ValueError(f"placement {self.request}: uplink must end by start")
        if len(self.downlink) > DOWNLINK_SEGMENTS_MAX:
            raise ValueError(f"placement {self.request}: at most {DOWNLINK_SEGMENTS_MAX} segments")
        previous_end = self.end
        for segment in self.downlink:
            _check_interval(f"placement {self.request} downlink", segment.start, segment.end)
            if segment.start < previous_end:
                raise ValueError(
                    f"placement {self.request}: downlink segments must follow the run and each "
                    "other in time"
                )
            previous_end = segment.end

    @property
    def finish(self) -> int:
        """When storage is released: the end of the last downlink segment, or the run's end."""
        return self.downlink[-1].end if self.downlink else self.end

    @property
    def downlink_seconds(self) -> int:
        return sum(segment.end - segment.start for segment in self.downlink)
