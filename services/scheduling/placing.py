"""Placing: one scheduling cycle over the stored pending requests, made durable.

Owns: `Placing` — bookings of requests no longer placed in the database (cancelled by an RPC
on any replica) released; the PENDING requests whose deadline is still ahead (their scheduler
form cached: specs never change once stored); each tenant's recent consumption for fair share
(`tenant_usage`); one `Scheduler.run_cycle`; and its outcome made durable in one transaction:
displaced (preempted, or moved by repacking) → PENDING, placed → PLACED with the placement and
the contacts it uses (a move that finds the request cancelled meanwhile gives the room back),
unschedulable → UNSCHEDULABLE with the summary and per-plugin reasons; still pending → their
reasons, written only when changed. Also `displace_guard_seconds`: how far ahead a placement's
uplink must be for a cycle to take it away (no ticket can have been pulled).

Does not own: placement decisions (orbitq.services.scheduler), the world (world_sync.py) or
the reservations of the requests that ended (owed.py).
"""

from __future__ import annotations

from orbitq.services.clock import NANOS_PER_SECOND
from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import PLACED_STATES, RequestState
from orbitq.services.requests.store import RequestStore
from orbitq.services.scheduler import Contact, CycleResult, Placement, Request, Scheduler, rfc3339
from orbitq.services.scheduler.runtime import CYCLE_REQUESTS_MAX
from orbitq.services.scheduling.moves import Moves
from orbitq.services.scheduling.reports import CycleReport

S = RequestState
# Fair share: consumption over this window orders tenants of equal priority.
USAGE_WINDOW_SECONDS = 86_400

REASON_DISPLACED = "displaced by a higher-priority request; placing it again"
REASON_MOVED = "moved to make room for another request before its ticket went up; placing it again"
# The cycle computes at `now` and commits moments later: placements whose uplink begins within
# this much more than the ticket pull window are not taken away either (the cycle's duration
# is far below it).
DISPLACE_MARGIN_SECONDS = 60


def displace_guard_seconds(pull_lead_seconds: int, tolerance_seconds: int) -> int:
    """How far ahead of now a placement's uplink must begin for a cycle to take it away: an
    agent may pull a ticket from its uplink instant less the pull lead less the contact
    tolerance (services/agents/tickets.py), so one further ahead has no ticket aboard."""
    return pull_lead_seconds + tolerance_seconds + DISPLACE_MARGIN_SECONDS


def tenant_usage(store: RequestStore, now_ns: int) -> dict[str, float]:
    """Each tenant's share of what was settled over the last day, summed over the kinds."""
    since = now_ns - USAGE_WINDOW_SECONDS * NANOS_PER_SECOND
    settled = store.usage_since(since)
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


class Placing:
    def __init__(self, scheduler: Scheduler, moves: Moves) -> None:
        self._scheduler = scheduler
        self._moves = moves
        self._store = moves.store
        # The scheduler's view of pending requests (specs never change once stored).
        self._pending: dict[str, Request] = {}
        # The reason last stored per pending request: only changes are written.
        self._reasons: dict[str, str] = {}

    def run(self, now_s: int, now_ns: int) -> CycleReport:
        """One cycle at `now_s`, its outcome stored."""
        self._reconcile()
        pending = self._pending_requests(now_s)
        result = self._scheduler.run_cycle(pending, now_s, tenant_usage(self._store, now_ns))
        return self._persist(result, now_ns)

    def _reconcile(self) -> None:
        """Release bookings of requests no longer placed in the database (cancelled by an RPC,
        on this replica or another)."""
        live = self._store.ids_in(PLACED_STATES)
        for request in self._scheduler.placed_requests():
            if request.id not in live:
                self._scheduler.release(request.id)

    def _pending_requests(self, now_s: int) -> list[Request]:
        ids = self._store.ids_in(frozenset({S.PENDING}), due_after=now_s)
        missing = [request_id for request_id in ids if request_id not in self._pending]
        for stored in self._store.fetch(missing):
            self._pending[stored.id] = stored.request()
        for gone in [request_id for request_id in self._pending if request_id not in ids]:
            del self._pending[gone]
        ordered = sorted(ids)[:CYCLE_REQUESTS_MAX]
        return [self._pending[request_id] for request_id in ordered]

    def _persist(self, result: CycleResult, now_ns: int) -> CycleReport:
        moved = set(result.moved)
        moves: list[Move] = [
            Move(
                request_id,
                frozenset({S.PLACED}),
                S.PENDING,
                REASON_MOVED if request_id in moved else REASON_DISPLACED,
            )
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
                self._scheduler.release(move.request_id)
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
            self._moves.hub.publish()
        applied = {m.request_id for m, r in zip(moves, results, strict=True) if r is not None}
        return CycleReport(
            ran=True,
            placed=tuple(p.request for p in result.placed if p.request in applied),
            displaced=tuple(result.displaced),
            unschedulable=tuple(u.request for u in result.unschedulable if u.request in applied),
            pending=tuple(sorted(waiting)),
        )

    def _contacts_of(self, placement: Placement) -> tuple[Contact, ...]:
        world = self._scheduler.world
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
