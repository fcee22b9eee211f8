"""The scheduling loop: one in-memory Scheduler kept in step with the database, its cycles,
and the transitions that time alone makes.

Owns:
- **the world** — built from the constellation when this replica starts leading, and again
  whenever nodes, stations or the contact plan change (`WorldVersion`): new contacts alone are
  added in place, a change of node states alone goes through `Scheduler.set_node_state`,
  anything else rebuilds the world and reserves every stored placement again
  (`place_existing`); a placement that no longer fits goes back to PENDING;
- **evacuation** — work on a node that went down: not-yet-uplinked placements go back to
  PENDING; started work (the ticket is on board) fails over to PENDING while the deadline
  still leaves time to run, and is FAILED otherwise;
- **`run_cycle(now)`** — the pending requests (deadline still ahead), the tenants' recent
  consumption (tokens settled over the last day, as shares per kind: fair share), one
  `Scheduler.run_cycle`, and its outcome made durable: placed → PLACED with the placement and
  the contacts it uses, displaced → PENDING, unschedulable → UNSCHEDULABLE with the reason
  (its reservation released), still pending → their per-plugin reasons;
- **`advance(now)`** — waiting requests whose deadline passed → EXPIRED; placed work whose
  start came → RUNNING; running work whose last downlink ended → COMPLETED, charged
  `placement_cost` (node agents come later: until then work runs on time);
- **owed reservations** — every terminal request whose reservation the ledger still holds is
  released (or, COMPLETED, settled) in batches, and retried until the ledger has it.

Both entry points take the leader lock first (leader.py) and do nothing on a replica that does
not hold it; both are plain methods that APScheduler and tests call. One lock serialises them:
the Scheduler is not thread-safe. Requests cancelled by RPCs (any replica) are released from
the Scheduler at the next cycle, which compares its bookings with the database.

Does not own: placement decisions (orbitq.services.scheduler), the ledger's transfers
(reservations.py) or transition rules (lifecycle.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from orbitq.services.clock import from_ns, to_ns
from orbitq.services.constellation import Constellation, NodeRecord, NodeState, WorldVersion
from orbitq.services.orbits import GroundStation
from orbitq.services.requests.leader import LeaderLock
from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import (
    PLACED_STATES,
    TERMINAL_STATES,
    AdvanceReport,
    CycleReport,
    RequestState,
    StoredRequest,
)
from orbitq.services.requests.reservations import Reservations, capped
from orbitq.services.requests.store import RequestStore
from orbitq.services.requests.watch import TransitionHub
from orbitq.services.requests.world import (
    node_shape,
    scheduler_contact,
    scheduler_node,
    scheduler_stations,
)
from orbitq.services.scheduler import (
    Contact,
    CycleResult,
    Placement,
    Request,
    Scheduler,
    SchedulerConfig,
    placement_cost,
    rfc3339,
)
from orbitq.services.scheduler.runtime import CYCLE_REQUESTS_MAX

log = logging.getLogger(__name__)

S = RequestState
NANOS_PER_SECOND = 1_000_000_000
# Fair share: consumption over this window orders tenants of equal priority.
USAGE_WINDOW_SECONDS = 86_400
# Requests one query of a pass moves, and queries per pass: a pass is bounded; what is left
# waits for the next one (seconds later).
DUE_BATCH_MAX = 1_000
DUE_BATCHES_MAX = 100
# How often the Scheduler forgets what is over (bookings, contacts, timeline history).
PRUNE_EVERY_SECONDS = 3_600

REASON_WAITING = "waiting for the next scheduling cycle"
REASON_DISPLACED = "displaced by a higher-priority request; placing it again"


class SchedulingLoop:
    def __init__(
        self,
        store: RequestStore,
        reservations: Reservations,
        constellation: Constellation,
        hub: TransitionHub,
        leader: LeaderLock,
        config: SchedulerConfig | None = None,
    ) -> None:
        self._store = store
        self._reservations = reservations
        self._constellation = constellation
        self._hub = hub
        self._leader = leader
        self.scheduler = Scheduler(config)
        self._lock = threading.Lock()
        self._version: WorldVersion | None = None
        self._shapes: dict[str, Hashable] = {}
        self._stations: Hashable = ()
        self._states: dict[str, NodeState] = {}
        # The scheduler's view of pending requests (specs never change once stored).
        self._pending: dict[str, Request] = {}
        # The reason last stored per pending request: only changes are written.
        self._reasons: dict[str, str] = {}
        self._pruned_at = 0

    # -- the two passes ------------------------------------------------------------------------

    def run_cycle(self, now: datetime) -> CycleReport:
        with self._lock:
            leading, fresh = self._leader.hold()
            if not leading:
                return CycleReport(ran=False)
            now_ns = to_ns(now)
            now_s = now_ns // NANOS_PER_SECOND
            evacuated = self._sync_world(now_s, now_ns, rebuild=fresh or self._version is None)
            self._reconcile()
            pending = self._pending_requests(now_s)
            result = self.scheduler.run_cycle(pending, now_s, self._usage(now_ns))
            report = self._persist(result, now_ns)
            self._resolve_owed(now_s, now_ns)
            if now_s - self._pruned_at >= PRUNE_EVERY_SECONDS:
                self.scheduler.prune(now_s)
                self._pruned_at = now_s
            return replace(report, evacuated=evacuated)

    def advance(self, now: datetime) -> AdvanceReport:
        with self._lock:
            leading, fresh = self._leader.hold()
            if not leading:
                return AdvanceReport(ran=False)
            if fresh:
                self._version = None  # the next cycle rebuilds from the database
            now_ns = to_ns(now)
            now_s = now_ns // NANOS_PER_SECOND
            expired = self._due_moves(
                frozenset({S.SUBMITTED, S.PENDING}), now_s, now_ns, self._expire_move
            )
            started = self._due_moves(frozenset({S.PLACED}), now_s, now_ns, self._start_move)
            completed = self._due_moves(frozenset({S.RUNNING}), now_s, now_ns, self._finish_move)
            for request_id in completed:
                self.scheduler.release(request_id)
            resolved = self._resolve_owed(now_s, now_ns)
            return AdvanceReport(True, started, completed, expired, resolved)

    # -- time-driven transitions ---------------------------------------------------------------

    def _due_moves(
        self,
        states: frozenset[RequestState],
        now_s: int,
        now_ns: int,
        make: Callable[[StoredRequest], Move],
    ) -> tuple[str, ...]:
        moved: list[str] = []
        for _ in range(DUE_BATCHES_MAX):
            due = self._store.due(states, now_s, DUE_BATCH_MAX)
            if not due:
                break
            moves = [make(request) for request in due]
            results = self._store.apply(moves, now_ns)
            moved.extend(r.id for r in results if r is not None)
            self._hub.publish()
            if len(due) < DUE_BATCH_MAX:
                break
        return tuple(moved)

    @staticmethod
    def _expire_move(request: StoredRequest) -> Move:
        return Move(
            request.id,
            frozenset({S.SUBMITTED, S.PENDING}),
            S.EXPIRED,
            f"the deadline {rfc3339(request.spec.deadline)} passed before it could be placed",
        )

    @staticmethod
    def _start_move(request: StoredRequest) -> Move:
        placement = request.placement
        assert placement is not None
        return Move(
            request.id,
            frozenset({S.PLACED}),
            S.RUNNING,
            f"started on node {placement.node} at {rfc3339(placement.start)}",
        )

    @staticmethod
    def _finish_move(request: StoredRequest) -> Move:
        placement = request.placement
        assert placement is not None
        charge = capped(placement_cost(request.request(), placement), request.reserved)
        return Move(
            request.id,
            frozenset({S.RUNNING}),
            S.COMPLETED,
            f"completed on node {placement.node}: the last downlink ended at"
            f" {rfc3339(placement.finish)}; charged cpu {charge.cpu:,}, storage"
            f" {charge.storage:,}, link {charge.link:,}",
            settled=charge,
        )

    def _resolve_owed(self, now_s: int, now_ns: int) -> tuple[str, ...]:
        """Release or settle the reservations of terminal requests the ledger still holds."""
        resolved: list[str] = []
        for _ in range(DUE_BATCHES_MAX):
            owed = self._store.due(TERMINAL_STATES, now_s, DUE_BATCH_MAX)
            if not owed:
                break
            settle = [(r, r.settled) for r in owed if r.state is S.COMPLETED]
            release = [r for r in owed if r.state is not S.COMPLETED]
            done = self._reservations.settle(settle) if settle else {}
            done.update(self._reservations.release(release) if release else {})
            self._store.close_reservations(done, now_ns)
            resolved.extend(done)
            if len(done) < len(owed) or len(owed) < DUE_BATCH_MAX:
                break  # what the ledger refused was logged; the next pass retries it
        return tuple(resolved)

    # -- the world -----------------------------------------------------------------------------

    def _sync_world(self, now_s: int, now_ns: int, *, rebuild: bool) -> tuple[str, ...]:
        """Bring the Scheduler's world up to date; returns requests moved off their node."""
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
                    self.scheduler.set_node_state(node_id, state, now_s)
        else:
            moved.extend(self._rebuild(nodes, stations, now_s, now_ns))
        self._version, self._shapes, self._stations, self._states = (
            version,
            shapes,
            station_key,
            states,
        )
        moved.extend(self._evacuate(now_s, now_ns))
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
        world = self.scheduler.world
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
        self.scheduler.add_contacts(new)
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
        live = self._store.in_states(PLACED_STATES)
        start = min([now_s] + [r.placement.uplink.at for r in live if r.placement is not None])
        contacts = [
            contact
            for contact in self._planned_contacts(start, now_s)
            if contact.node in node_ids and contact.station in station_ids
        ]
        self.scheduler.set_world(world_nodes, world_stations, contacts)
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
            status = self.scheduler.place_existing(request.request(), request.placement)
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
        return self._apply(moves, now_ns)

    def _evacuate(self, now_s: int, now_ns: int) -> list[str]:
        """Move live work off nodes that are down."""
        down = {node for node, state in self._states.items() if state == "down"}
        if not down:
            return []
        moves: list[Move] = []
        for request in self._store.in_states(PLACED_STATES):
            placement = request.placement
            if placement is None or placement.node not in down:
                continue
            self.scheduler.release(request.id)
            node = placement.node
            if request.state is S.PLACED and placement.uplink.at > now_s:
                reason = f"node {node} is down; placing it again"
                moves.append(Move(request.id, frozenset({S.PLACED}), S.PENDING, reason))
            elif now_s + request.spec.run_seconds < request.spec.deadline:
                reason = (
                    f"node {node} went down after the ticket went up; the deadline"
                    " leaves time to run again, placing it again"
                )
                moves.append(Move(request.id, frozenset({request.state}), S.PENDING, reason))
            else:
                reason = (
                    f"node {node} went down after the ticket went up, and the deadline"
                    f" {rfc3339(request.spec.deadline)} leaves no time to run again"
                )
                moves.append(Move(request.id, frozenset({request.state}), S.FAILED, reason))
        return self._apply(moves, now_ns)

    def _reconcile(self) -> None:
        """Release bookings of requests no longer placed in the database (cancelled by an RPC,
        on this replica or another)."""
        live = self._store.ids_in(PLACED_STATES)
        for request in self.scheduler.placed_requests():
            if request.id not in live:
                self.scheduler.release(request.id)

    # -- one cycle -----------------------------------------------------------------------------

    def _pending_requests(self, now_s: int) -> list[Request]:
        ids = self._store.ids_in(frozenset({S.PENDING}), due_after=now_s)
        missing = [request_id for request_id in ids if request_id not in self._pending]
        for stored in self._store.fetch(missing):
            self._pending[stored.id] = stored.request()
        for gone in [request_id for request_id in self._pending if request_id not in ids]:
            del self._pending[gone]
        ordered = sorted(ids)[:CYCLE_REQUESTS_MAX]
        return [self._pending[request_id] for request_id in ordered]

    def _usage(self, now_ns: int) -> dict[str, float]:
        """Each tenant's share of what was settled over the last day, summed over the kinds."""
        since = now_ns - USAGE_WINDOW_SECONDS * NANOS_PER_SECOND
        settled = self._store.usage_since(since)
        totals = [
            sum(c.cpu for c in settled.values()),
            sum(c.storage for c in settled.values()),
            sum(c.link for c in settled.values()),
        ]
        return {
            tenant: sum(
                part / total
                for part, total in zip((c.cpu, c.storage, c.link), totals, strict=True)
                if total
            )
            for tenant, c in settled.items()
        }

    def _persist(self, result: CycleResult, now_ns: int) -> CycleReport:
        moves: list[Move] = [
            Move(request_id, frozenset({S.PLACED}), S.PENDING, REASON_DISPLACED)
            for request_id in result.displaced
        ]
        for placement in result.placed:
            moves.append(
                Move(
                    placement.request,
                    frozenset({S.PENDING}),
                    S.PLACED,
                    f"placed on node {placement.node}: runs {rfc3339(placement.start)} to"
                    f" {rfc3339(placement.end)}, result down by {rfc3339(placement.finish)}",
                    placement=placement,
                    contacts=self._contacts_of(placement),
                )
            )
        for unplaced in result.unschedulable:
            moves.append(
                Move(
                    unplaced.request,
                    frozenset({S.PENDING}),
                    S.UNSCHEDULABLE,
                    unplaced.summary or "no node can take it",
                    reasons=unplaced.reasons,
                )
            )
        results = self._store.apply(moves, now_ns)
        for move, stored in zip(moves, results, strict=True):
            if stored is None and move.to is S.PLACED:
                # Cancelled (or otherwise moved) since the cycle read it: give the room back.
                self.scheduler.release(move.request_id)
        updates = [
            (u.request, u.summary, u.reasons)
            for u in result.pending
            if self._reasons.get(u.request) != u.summary
        ]
        self._store.set_reasons(updates, now_ns)
        for request_id, summary, _ in updates:
            self._reasons[request_id] = summary
        waiting = {u.request for u in result.pending}
        for request_id in [r for r in self._reasons if r not in waiting]:
            del self._reasons[request_id]
        if moves or updates:
            self._hub.publish()
        applied = {m.request_id for m, r in zip(moves, results, strict=True) if r is not None}
        return CycleReport(
            ran=True,
            placed=tuple(p.request for p in result.placed if p.request in applied),
            displaced=tuple(result.displaced),
            unschedulable=tuple(u.request for u in result.unschedulable if u.request in applied),
            pending=tuple(sorted(waiting)),
        )

    def _contacts_of(self, placement: Placement) -> tuple[Contact, ...]:
        world = self.scheduler.world
        ids = [placement.uplink.contact, *(s.contact for s in placement.downlink)]
        contacts: list[Contact] = []
        for contact_id in dict.fromkeys(ids):
            ref = world.contacts[contact_id]
            contacts.append(
                Contact(
                    contact_id,
                    world.nodes[ref.node].node.id,
                    world.stations[ref.station].station.id,
                    ref.start,
                    ref.end,
                )
            )
        return tuple(contacts)

    def _apply(self, moves: Sequence[Move], now_ns: int) -> list[str]:
        if not moves:
            return []
        results = self._store.apply(moves, now_ns)
        self._hub.publish()
        return [r.id for r in results if r is not None]
