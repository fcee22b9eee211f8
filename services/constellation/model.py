"""The constellation's vocabulary: node records, capacities, stored contacts, reports, limits.

Owns: the frozen values the broker's constellation reads and returns (ground stations are
orbitq.services.orbits.GroundStation itself), the limits on every import and list, the node
states, and how a list of import problems becomes one message a person can act on.
Does not own: storage (see `tables`) or any rule about when things change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal, get_args

from orbitq.services.clock import from_ns
from orbitq.services.orbits import ContactWindow, ElementSet, ImportProblem

NodeState = Literal["ready", "degraded", "down"]
NODE_STATES: tuple[NodeState, ...] = get_args(NodeState)

# One import: 16 MiB of text holds ~95,000 3-line TLEs or ~20,000 OMM JSON records; 20,000
# element sets per call covers any single constellation shell by shell (Starlink's whole public
# catalog is ~9,000) and keeps one call's transaction to a few seconds.
ELEMENT_TEXT_BYTES_MAX = 16 * 1024 * 1024
NODES_PER_IMPORT_MAX = 20_000
CAPACITIES_TEXT_BYTES_MAX = 4 * 1024 * 1024
# The broker's whole world (the scheduler indexes at most this many nodes).
NODES_MAX = 100_000
STATION_TEXT_BYTES_MAX = 16 * 1024 * 1024
# Contact computation grows with stations x satellites; real ground networks have tens.
STATIONS_MAX = 1_000
# Problems listed in an INVALID_ARGUMENT message (gRPC trailers are limited to 8 KiB), and
# returned in a skip_bad response.
PROBLEMS_IN_ERROR_MAX = 20
PROBLEM_CHARS_MAX = 200
PROBLEMS_REPORTED_MAX = 1_000

CPU_MILLICORES_MAX = 1_000_000
STORAGE_MB_MAX = 1_000_000_000
LINK_MBPS_MAX = 1_000_000


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a node's computer and radio offer. As an import's input, 0 means "not given"."""

    cpu_millicores: int
    storage_mb: int
    downlink_mbps: int
    uplink_mbps: int

    def over(self, base: Capacity) -> Capacity:
        """This capacity's given (non-zero) fields, the others from `base`."""
        return Capacity(
            self.cpu_millicores or base.cpu_millicores,
            self.storage_mb or base.storage_mb,
            self.downlink_mbps or base.downlink_mbps,
            self.uplink_mbps or base.uplink_mbps,
        )

    def problems(self, *, given_only: bool) -> list[str]:
        """Fields outside their range (0 allowed when `given_only`: it means "not given")."""
        low = 0 if given_only else 1
        found = []
        for name, value, high in (
            ("cpu_millicores", self.cpu_millicores, CPU_MILLICORES_MAX),
            ("storage_mb", self.storage_mb, STORAGE_MB_MAX),
            ("downlink_mbps", self.downlink_mbps, LINK_MBPS_MAX),
            ("uplink_mbps", self.uplink_mbps, LINK_MBPS_MAX),
        ):
            if not low <= value <= high:
                found.append(f"{name} is {value}; it must be 1..{high:,}")
        return found


NO_CAPACITY = Capacity(0, 0, 0, 0)
# What a new node gets for a field nobody gave: a small flight computer (4 cores, 64 GB), an
# X-band downlink and an S-band uplink. Modelling assumptions; operators import real figures.
CAPACITY_DEFAULT = Capacity(
    cpu_millicores=4_000, storage_mb=64_000, downlink_mbps=100, uplink_mbps=10
)


GroundLink = Literal["contacts", "always"]
GROUND_LINKS: tuple[GroundLink, ...] = get_args(GroundLink)


@dataclass(frozen=True, slots=True)
class NodeAgentInfo:
    """The agent enrolled for a node (orbitq.services.agents owns the rules): how it reaches
    the ground, the key its receipts are signed with, its calibrated rate and runtime."""

    ground_link: GroundLink
    public_key: bytes
    key_id: bytes
    fuel_per_core_second: int
    runtime: str
    enrolled_ns: int
    key_entry_index: int
    api_key_id: str
    last_heartbeat_ns: int | None
    missed_contacts: int
    degraded_by_broker: bool


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A node as stored: a satellite with a computer. `id` is the NORAD id in decimal.
    `agent` is its enrolled node agent (None: none ever enrolled)."""

    id: str
    name: str
    norad_id: int
    elements: ElementSet
    capacity: Capacity
    labels: Mapping[str, str] = field(hash=False)
    state: NodeState
    updated_ns: int
    agent: NodeAgentInfo | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        assert self.id == str(self.norad_id) == str(self.elements.norad_id), self.id
        assert self.state in NODE_STATES, self.state


@dataclass(frozen=True, slots=True)
class NodeImport:
    """One ImportNodes call: element-set text and what to give the nodes it names."""

    text: str
    fmt: str = "auto"
    default_capacity: Capacity = NO_CAPACITY
    labels: Mapping[str, str] = field(default_factory=dict)
    skip_bad: bool = False
    capacities_csv: str = ""


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: counts, the bad records skipped (skip_bad), stale element sets."""

    created: int
    updated: int
    problems: tuple[ImportProblem, ...] = ()
    # Ids of nodes whose element sets are more than ELEMENT_AGE_WARN_DAYS from the clock.
    stale: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredContact:
    """A contact window as stored: `node` sees `station` during [aos_ns, los_ns).

    `id` stays the same when later refreshes recompute the same pass (see `plan`)."""

    id: str
    node: str
    station: str
    aos_ns: int
    los_ns: int
    max_elevation_deg: float

    @property
    def aos(self) -> datetime:
        return from_ns(self.aos_ns)

    @property
    def los(self) -> datetime:
        return from_ns(self.los_ns)

    def window(self) -> ContactWindow:
        return ContactWindow(self.node, self.station, self.aos, self.los, self.max_elevation_deg)


@dataclass(frozen=True, slots=True)
class ContactPlan:
    """What the last refresh covered: contacts are complete over [horizon_start, horizon_end)."""

    version: int
    horizon_start_ns: int
    horizon_end_ns: int
    refreshed_ns: int
    longest_contact_ns: int


@dataclass(frozen=True, slots=True)
class WorldVersion:
    """Changes whenever nodes, stations or the contact plan change (any replica's write): a
    test of whether a copy of the world (the scheduler's) is still current. `plan_version`
    counts refreshes of the contact plan; `world_revision` counts write transactions on nodes
    and stations — counters, not timestamps, so even changes made at one instant of a
    simulated clock are seen. A write that changed nothing may bump it too: the reader then
    compares what it reads and finds nothing to do."""

    plan_version: int
    world_revision: int


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What one refresh of the contact plan did."""

    horizon_start_ns: int
    horizon_end_ns: int
    computed: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    truncated: int
    pruned: int
    # False when another refresh (another replica) replaced the plan while this one computed.
    applied: bool = True


def problems_message(head: str, problems: Sequence[ImportProblem | str]) -> str:
    """`head`, then each problem on its own line (at most PROBLEMS_IN_ERROR_MAX, each cut to
    PROBLEM_CHARS_MAX characters), then how many more there are."""
    lines = [head]
    for problem in problems[:PROBLEMS_IN_ERROR_MAX]:
        text = str(problem)
        if len(text) > PROBLEM_CHARS_MAX:
            text = text[: PROBLEM_CHARS_MAX - 3] + "..."
        lines.append(f"  {text}")
    if len(problems) > PROBLEMS_IN_ERROR_MAX:
        lines.append(f"  ... and {len(problems) - PROBLEMS_IN_ERROR_MAX} more")
    return "\n".join(lines)
