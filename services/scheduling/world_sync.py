"""World sync: the Scheduler's world kept in step with the constellation.

Owns: `WorldSync`. Each cycle reads `Constellation.world_version()` (one row); when it moved,
the change is applied to the live world in place wherever it can be:
- nodes or stations written (`world_revision` moved) → the stations (a few dozen rows) and
  only the nodes written since (`changed_nodes`: an indexed read, one row for one state
  change) are read; state changes → `Scheduler.set_node_state`;
- the contact plan moved (a refresh or an imported plan) → its contacts over [now, horizon)
  are compared with the world's: new ones are added, moved or vanished ones replaced in place
  (`Scheduler.replace_contacts`, which keeps every placement that still fits);
- anything else — a new node, a node's capacity, labels or agent changed, a station changed,
  or this replica just became the leader → the world is rebuilt (`set_world`) and every stored
  PLACED or RUNNING placement is reserved again (`place_existing`, running work first, then by
  priority);
a placement that no longer fits (after a rebuild or a moved contact) goes back to PENDING if its
uplink has not begun (started work keeps it, logged); then live work on nodes that went down
is evacuated (evacuation.py). `rebuilds` and `updates` count the two paths (tests, metrics).

A contact cut at the plan's horizon end is left out until a refresh shows its real end
(otherwise every refresh would move it under the Scheduler).

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
from orbitq.services.requests.model import PLACED_STATES, RequestState, StoredRequest
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
        self.rebuilds = 0  # worlds built from scratch
        self.updates = 0  # changes applied to the live world in place

    def forget(self) -> None:
        """Rebuild at the next sync (this replica has just become the leader)."""
        self._version = None

    def sync(self, now_s: int, now_ns: int, *, fresh: bool) -> tuple[str, ...]:
        """Bring the Scheduler's world up to date (rebuilt when `fresh`); returns the
        requests moved off their node."""
        previous = None if fresh else self._version
        version = self._constellation.world_version()
        if previous is not None and version == previous:
            return ()
        moved: list[str] = []
        down: set[str] | None = None
        if previous is not None:
            down = self._update(previous, version, now_s, now_ns, moved)
        if down is None:
            moved.extend(self._rebuild_all(now_s, now_ns))
            down = {node for node, state in self._states.items() if state == "down"}
        self._version = version
        store = self._moves.store
        moved.extend(
            self._moves.apply(evacuation_moves(self._scheduler, store, down, now_s), now_ns)
        )
        return tuple(moved)

    def _update(
        self,
        previous: WorldVersion,
        version: WorldVersion,
        now_s: int,
        now_ns: int,
        moved: list[str],
    ) -> set[str] | None:
        """Apply the change since `previous` in place; the nodes that went down, or None when
        only a rebuild can apply it (nothing was changed then)."""
        went_down: set[str] = set()
        if version.world_revision != previous.world_revision:
            if self._station_key(self._constellation.stations()) != self._stations:
                return None
            changed = self._constellation.changed_nodes(previous.world_revision)
            if any(self._shapes.get(node.id) != node_shape(node) for node in changed):
                return None  # a new node, or capacity, labels or agent changed
            for node in changed:
                if self._states.get(node.id) == node.state:
                    continue
                self._scheduler.set_node_state(node.id, node.state, now_s)
                self._states[node.id] = node.state
                self.updates += 1
                if node.state == "down":
                    went_down.add(node.id)
        if version.plan_version != previous.plan_version:
            lost = self._apply_plan(now_s)
            moved.extend(self._moves.apply(self._replace_moves(lost, now_s), now_ns))
        return went_down

    def _rebuild_all(self, now_s: int, now_ns: int) -> list[str]:
        nodes = self._constellation.nodes()
        stations = self._constellation.stations()
        self._shapes = {node.id: node_shape(node) for node in nodes}
        self._stations = self._station_key(stations)
        self._states = {node.id: node.state for node in nodes}
        self.rebuilds += 1
        return self._rebuild(nodes, stations, now_s, now_ns)

    @staticmethod
    def _station_key(stations: Sequence[GroundStation]) -> Hashable:
        return tuple(
            (s.id, s.antennas, tuple(sorted(s.labels.items())))
            for s in sorted(stations, key=lambda s: s.id)
        )

    def _apply_plan(self, now_s: int) -> tuple[str, ...]:
        """Compare the plan's contacts over [now, horizon) with the world's and apply the
        difference in place: new ones added, moved or vanished ones replaced. Returns the
        placements a moved contact no longer holds (released from the Scheduler)."""
        world = self._scheduler.world
        known_future = {cid for cid, ref in world.contacts.items() if ref.end > now_s}
        seen: set[str] = set()
        added: list[Contact] = []
        removed: list[str] = []
        for contact in planned_contacts(self._constellation, now_s, now_s):
            node = world.node_index.get(contact.node)
            station = world.station_index.get(contact.station)
            if node is None or station is None:
                continue
            seen.add(contact.id)
            ref = world.contacts.get(contact.id)
            if ref is None:
                added.append(contact)
            elif (ref.node, ref.station, ref.start, ref.end) != (
                node,
                station,
                contact.start,
                contact.end,
            ):
                removed.append(contact.id)
                added.append(contact)
        removed.extend(sorted(known_future - seen))
        if not added and not removed:
            return ()
        self.updates += 1
        if not removed:
            self._scheduler.add_contacts(added)
            return ()
        log.info(
            "contact plan: %d contact(s) moved or gone, %d added; applied in place",
            len(removed),
            len(added),
        )
        return self._scheduler.replace_contacts(removed, added)

    def _replace_moves(self, lost: Sequence[str], now_s: int) -> list[Move]:
        """What becomes of placements a changed contact no longer holds."""
        if not lost:
            return []
        moves: list[Move] = []
        for request in self._moves.store.fetch(lost):
            if request.state not in PLACED_STATES or request.placement is None:
                continue
            move = self._misfit(request, "a contact it uses moved or is gone", now_s)
            if move is not None:
                moves.append(move)
        return moves

    def _misfit(self, request: StoredRequest, reason: str, now_s: int) -> Move | None:
        """The move of a stored placement the world no longer holds: back to PENDING if its
        uplink has not begun; started work keeps its placement (logged)."""
        assert request.placement is not None
        if request.state is S.PLACED and request.placement.uplink.at > now_s:
            return Move(
                request.id,
                frozenset({S.PLACED}),
                S.PENDING,
                f"its placement no longer fits the changed world ({reason}); placing it again",
            )
        log.warning(
            "request %s keeps its started placement on node %s, which the changed"
            " world no longer holds (%s)",
            request.id,
            request.placement.node,
            reason,
        )
        return None

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
            for contact in planned_contacts(self._constellation, start, now_s)
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
            move = self._misfit(request, status.reason, now_s)
            if move is not None:
                moves.append(move)
        return self._moves.apply(moves, now_ns)


def planned_contacts(constellation: Constellation, start_s: int, now_s: int) -> Iterator[Contact]:
    """The stored contacts overlapping [start_s, the plan's horizon end), in whole seconds.

    A contact cut at the horizon's end is left out: the next refresh gives it its real
    end (and would move it under the Scheduler at every refresh); it is used once a
    refresh shows all of it."""
    horizon_end_ns = constellation.plan().horizon_end_ns
    end_s = max(horizon_end_ns // NANOS_PER_SECOND, now_s) + 1
    for batch in constellation.iter_contacts_between(
        from_ns(start_s * NANOS_PER_SECOND), from_ns(end_s * NANOS_PER_SECOND)
    ):
        for stored in batch:
            if stored.los_ns >= horizon_end_ns:
                continue
            contact = scheduler_contact(stored)
            if contact is not None:
                yield contact
