"""A throwaway copy of the scheduler's world, for questions: never the leader's live one.

Owns: `build` — a fresh `Scheduler` holding the stored nodes and stations, the stored contacts
from the earliest live uplink (or now) to the contact plan's horizon end, and every stored
PLACED or RUNNING placement reserved again; built the way the leader's world sync rebuilds its
own (the same conversions, and world_sync.planned_contacts itself: a contact
cut at the horizon's end is left out), so a probe on it runs the scheduler's own feasibility
against the same occupancy. Nothing is written: the copy is dropped after the question.

The stored contacts are read once per world version (`ContactCache`), since they change only
with it; nodes, stations and live placements are read for every question.

Bounds (each question pays for one build): at most CONTACTS_MAX contacts are read (the rest of
the plan is cut off and `truncated` says so) and at most PLACEMENTS_MAX live placements are
reserved (oldest first; more means the copy looks emptier than the real schedule: `truncated`).
The scheduler for probes has the standard plugins but one score, `EarliestFinish` (the ETA is
the earliest completion among up to NODES_TO_SCORE feasible nodes, where the live scheduler
also weighs packing), examines at most NODES_MAX nodes per walk, preempts and repacks nothing
(an answer never counts on displacing someone's placed work) and does not rotate (the same
question gets the same answer).

Does not own: what is asked of the copy (probe.py) or the stored world (the constellation).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from orbitq.services.constellation import Constellation, WorldVersion
from orbitq.services.requests.model import PLACED_STATES
from orbitq.services.requests.store import RequestStore
from orbitq.services.scheduler import Contact, Scheduler, SchedulerConfig, default_profile
from orbitq.services.scheduler.framework import SCORE_MAX, Draft, RequestContext
from orbitq.services.scheduler.world import WORLD_NODES_MAX
from orbitq.services.scheduling.convert import (
    scheduler_node,
    scheduler_stations,
)
from orbitq.services.scheduling.world_sync import planned_contacts

CONTACTS_MAX = 500_000
PLACEMENTS_MAX = 50_000
NODES_MAX = 20_000
# Feasible nodes compared for the earliest completion (once one fits, at most this many are
# examined in all: the live scheduler's own bound).
NODES_TO_SCORE = 64


@dataclass(frozen=True)
class Scratch:
    """The copy and what went into it."""

    scheduler: Scheduler
    nodes: int
    contacts: int
    placements: int
    # Known contacts end here (seconds): a deadline past it gains no contact.
    contacts_until: int
    # Contacts or placements were left out at the bounds above.
    truncated: bool


class EarliestFinish:
    """Score: only the drafts that finish soonest (the ETA is the earliest completion the
    world allows, not the one the live scheduler's packing would prefer)."""

    name = "earliest_finish"

    def score(self, ctx: RequestContext, drafts: Sequence[Draft]) -> list[int]:
        soonest = min(draft.finish for draft in drafts)
        return [SCORE_MAX if draft.finish == soonest else 0 for draft in drafts]


def probe_config(agents_required: bool, nodes: int) -> SchedulerConfig:
    examine = max(1, min(nodes, NODES_MAX, WORLD_NODES_MAX))
    scored = min(NODES_TO_SCORE, examine)
    return SchedulerConfig(
        nodes_to_examine_max=examine,
        feasible_nodes_to_score=scored,
        nodes_to_examine_once_fitting_max=max(scored, NODES_TO_SCORE),
        preemption=False,
        repack_attempts_per_cycle_max=0,
        rotate=False,
        agents_required=agents_required,
    )


def probe_scheduler(agents_required: bool, nodes: int) -> Scheduler:
    profile = default_profile(((EarliestFinish(), 1),), agents_required=agents_required)
    return Scheduler(probe_config(agents_required, nodes), profile)


class ContactCache:
    """The plan's contacts as the scheduler takes them, read once per world version.

    Reading and converting the stored contacts is half of a build's cost (about 1 s for 30,000
    contacts on SQLite), and they only change when the world version does (a refresh, a booked
    plan, a node or station change: one row to compare). One entry: the contacts from the
    `start` it was read for; a later question with a later start filters it, an earlier start
    (time went back) or a new version reads again. Thread-safe; at most CONTACTS_MAX held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[WorldVersion, int] | None = None
        self._contacts: list[Contact] = []
        self._truncated = False

    def between(
        self, constellation: Constellation, start_s: int, now_s: int
    ) -> tuple[list[Contact], bool]:
        """Contacts overlapping [start_s, horizon end) and whether CONTACTS_MAX cut them."""
        version = constellation.world_version()
        with self._lock:
            key = self._key
            if key is not None and key[0] == version and key[1] <= start_s:
                kept = [c for c in self._contacts if c.end > start_s]
                return kept, self._truncated
        contacts: list[Contact] = []
        truncated = False
        for contact in planned_contacts(constellation, start_s, now_s):
            if len(contacts) >= CONTACTS_MAX:
                truncated = True
                break
            contacts.append(contact)
        with self._lock:
            self._key, self._contacts, self._truncated = (version, start_s), contacts, truncated
        return contacts, truncated


def build(
    constellation: Constellation,
    store: RequestStore,
    now_s: int,
    *,
    agents_required: bool,
    cache: ContactCache | None = None,
) -> Scratch:
    nodes = [scheduler_node(record) for record in constellation.nodes()]
    stations = scheduler_stations(constellation.stations())
    node_ids = {node.id for node in nodes}
    station_ids = {station.id for station in stations}
    live = store.in_states(PLACED_STATES, limit=PLACEMENTS_MAX + 1)
    truncated = len(live) > PLACEMENTS_MAX
    live = live[:PLACEMENTS_MAX]
    start = min([now_s] + [r.placement.uplink.at for r in live if r.placement is not None])
    planned, cut = (cache or ContactCache()).between(constellation, start, now_s)
    truncated = truncated or cut
    contacts = [c for c in planned if c.node in node_ids and c.station in station_ids]
    scheduler = probe_scheduler(agents_required, len(nodes))
    scheduler.set_world(nodes, stations, contacts)
    placed = 0
    # As the leader restores them: running work first, then by priority.
    live.sort(key=lambda r: (r.state.name != "RUNNING", -r.spec.priority, r.submitted_ns))
    for request in live:
        assert request.placement is not None
        if scheduler.place_existing(request.request(), request.placement).ok:
            placed += 1
    return Scratch(
        scheduler,
        len(nodes),
        len(contacts),
        placed,
        max((c.end for c in contacts), default=now_s),
        truncated,
    )
