"""World sync: the Scheduler's world kept in step with the constellation.

Owns: `WorldSync`. Each cycle reads `Constellation.world_version()` (one row); when it moved,
nodes and stations are read and compared with what the Scheduler was given:
- only node states changed → `Scheduler.set_node_state`;
- only the contact plan moved → its new contacts are added in place (`add_contacts`);
- anything else (or a contact changed or vanished, or this replica just became the leader)
  → the world is rebuilt (`set_world`) and every stored PLACED or RUNNING placement is reserved
  again (`place_existing`, running work first, then by priority); a placement that no longer
  fits goes back to PENDING if its uplink has not begun (started work keeps it, logged);
then live work on nodes that are down is evacuated (evacuation.py).

A contact cut at the plan's horizon end is left out until a refresh shows its real end
(otherwise every refresh would change it under the Scheduler and force a rebuild).

Does not own: the conversions (convert.py), what is done with work on a down node
(evacuation.py) or the stored world (the constellation).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator, Sequence

from orbitq.services.clock import NANOS_PER_SECOND, from_ns
from orbitq.services.constellation import Constellation, NodeRecord, NodeState, WorldVersion
from orbitq.services.orbits import GroundStation
from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import PLACED_STATES, RequestState
from orbitq.services.scheduler import Contact, Scheduler
from orbitq.services.scheduling.convert import (
    node_shape,
    scheduler_contact,
    scheduler_node,
    scheduler_stations,
)
from orbitq.services.scheduling.evacuation import evacuation_moves
from orbitq.services.scheduling.moves import Moves

log = logging.getLogger(__name__)

S = RequestState


class WorldSync:
    def __init__(self, scheduler: Scheduler, constellation: Constellation, moves: Moves) -> None:
        self._scheduler = scheduler
        self._constellation = constellation
        self._moves = moves
        self._version: WorldVersion | None = None
        self._shapes: dict[str, Hashable] = {}
        self._stations: Hashable = ()
        self._states: dict[str, NodeState] = {}

    def forget(self) -> None:
        """Rebuild at the next sync (this replica has just become the leader)."""
        self._version = None

    def sync(self, now_s: int, now_ns: int, *, fresh: bool) -> tuple[str, ...]:
        """Bring the Scheduler's world up to date (rebuilt when `fresh`); returns the
        requests moved off their node."""
        rebuild = fresh or self._version is None
        version = self._constellation.world_version()
        if not rebuild and version == self._version:
            return ()
        nodes = self._constellation.nodes()
        stations = self._constellation.stations()
        shapes = {node.id: node_shape(node) for node in nodes}
        station_key = tuple(
            (s.id, s.antennas, tuple(sorted(s.labels.items())))
            for s in sorted(stations, key=lambda s: s.id)
        )
        states = {node.id: node.state for node in nodes}
        moved: list[str] = []
        previous = self._version
        incremental = (
            not rebuild
            and previous is not None
            and shapes == self._shapes
            and station_key == self._stations
        )
        if incremental and previous is not None and version.plan_version != previous.plan_version:
            incremental = self._add_new_contacts(now_s)
        if incremental:
            for node_id, state in states.items():
                if self._states.get(node_id) != state:
                    self._scheduler.set_node_state(node_id, state, now_s)
        else:
            moved.extend(self._rebuild(nodes, stations, now_s, now_ns))
        self._version, self._shapes, self._stations, self._states = (
            version,
            shapes,
            station_key,
            states,
        )
        down = {node for node, state in self._states.items() if state == "down"}
        store = self._moves.store
        moved.extend(
            self._moves.apply(evacuation_moves(self._scheduler, store, down, now_s), now_ns)
        )
        return tuple(moved)

    def _planned_contacts(self, start_s: int, now_s: int) -> Iterator[Contact]:
        """The stored contacts overlapping [start_s, the plan's horizon end), in whole seconds.

        A contact cut at the horizon's end is left out: the next refresh gives it its real
        end (and would change it under the Scheduler, forcing a rebuild); it is used once a
        refresh shows all of it."""
        horizon_end_ns = self._constellation.plan().horizon_end_ns
        end_s = max(horizon_end_ns // NANOS_PER_SECOND, now_s) + 1
        for batch in self._constellation.iter_contacts_between(
            from_ns(start_s * NANOS_PER_SECOND), from_ns(end_s * NANOS_PER_SECOND)
        ):
            for stored in batch:
                if stored.los_ns >= horizon_end_ns:
                    continue
                contact = scheduler_contact(stored)
                if contact is not None:
                    yield contact

    def _add_new_contacts(self, now_s: int) -> bool:
        """Add the plan's new contacts in place; False when a known one moved or vanished
        (then the world is rebuilt)."""
        world = self._scheduler.world
        known_future = {cid for cid, ref in world.contacts.items() if ref.end > now_s}
        seen: set[str] = set()
        new: list[Contact] = []
        for contact in self._planned_contacts(now_s, now_s):
            node = world.node_index.get(contact.node)
            station = world.station_index.get(contact.station)
            if node is None or station is None:
                continue
            ref = world.contacts.get(contact.id)
            if ref is None:
                new.append(contact)
            elif (ref.node, ref.station, ref.start, ref.end) != (
                node,
                station,
                contact.start,
                contact.end,
            ):
                return False
            seen.add(contact.id)
        if known_future - seen:
            return False
        self._scheduler.add_contacts(new)
        return True

    def _rebuild(
        self,
        nodes: Sequence[NodeRecord],
        stations: Sequence[GroundStation],
        now_s: int,
        now_ns: int,
    ) -> list[str]:
        """A fresh world with every stored placement reserved again; placements that no longer
        fit and have not started go back to PENDING."""
        world_nodes = [scheduler_node(n) for n in nodes]
        world_stations = scheduler_stations(stations)
        node_ids = {n.id for n in world_nodes}
        station_ids = {s.id for s in world_stations}
        live = self._moves.store.in_states(PLACED_STATES)
        start = min([now_s] + [r.placement.uplink.at for r in live if r.placement is not None])
        contacts = [
            contact
            for contact in self._planned_contacts(start, now_s)
            if contact.node in node_ids and contact.station in station_ids
        ]
        self._scheduler.set_world(world_nodes, world_stations, contacts)
        log.info(
            "scheduler world: %d nodes, %d stations, %d contacts; %d placements to restore",
            len(world_nodes),
            len(world_stations),
            len(contacts),
            len(live),
        )
        moves: list[Move] = []
        live.sort(key=lambda r: (r.state is not S.RUNNING, -r.spec.priority, r.submitted_ns))
        for request in live:
            assert request.placement is not None
            status = self._scheduler.place_existing(request.request(), request.placement)
            if status.ok:
                continue
            if request.state is S.PLACED and request.placement.uplink.at > now_s:
                moves.append(
                    Move(
                        request.id,
                        frozenset({S.PLACED}),
                        S.PENDING,
                        f"its placement no longer fits the changed world ({status.reason});"
                        " placing it again",
                    )
                )
            else:
                log.warning(
                    "request %s keeps its started placement on node %s, which the changed"
                    " world no longer holds (%s)",
                    request.id,
                    request.placement.node,
                    status.reason,
                )
        return self._moves.apply(moves, now_ns)
