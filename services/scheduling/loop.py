"""The scheduling loop: one in-memory Scheduler kept in step with the database, its cycles and
the transitions time makes, composed from one module per job.

Owns: `SchedulingLoop` — the Scheduler, the lock that serialises every pass (the Scheduler is
not thread-safe), the leader lock (leader.py: a replica that does not hold it does nothing),
pruning the Scheduler every PRUNE_EVERY_SECONDS of its clock, and the order of each pass:

    run_cycle(now): world sync (world_sync.py, with evacuation.py) → one cycle (placing.py)
                    → owed reservations (owed.py) → prune
    advance(now):   expired, started (start.py), completed (completion.py) (advance.py)
                    → owed reservations (owed.py)
    tick(now):      advance, then run_cycle, at one instant: what the broker's job runs

All are plain methods that APScheduler, the simulator and tests call, `now` defaulting to the
clock's. Requests cancelled by RPCs (on any replica) are released from the Scheduler at the
next cycle, which compares its bookings with the database.

Does not own: any job's rules (their modules), placement decisions (orbitq.services.scheduler)
or the request lifecycle (orbitq.services.requests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from orbitq.services.clock import NANOS_PER_SECOND, to_ns
from orbitq.services.constellation import Constellation
from orbitq.services.requests.reservations import Reservations
from orbitq.services.requests.store import RequestStore
from orbitq.services.requests.watch import TransitionHub
from orbitq.services.scheduler import UPLINK_NOTICE_MARGIN_SECONDS, Scheduler, SchedulerConfig
from orbitq.services.scheduling.advance import Advance
from orbitq.services.scheduling.completion import ClockCompletion, Completion
from orbitq.services.scheduling.export import stored_schedule
from orbitq.services.scheduling.leader import LeaderLock
from orbitq.services.scheduling.moves import Moves
from orbitq.services.scheduling.owed import resolve_owed
from orbitq.services.scheduling.placing import Placing
from orbitq.services.scheduling.reports import AdvanceReport, CycleReport
from orbitq.services.scheduling.start import ClockStart, Start
from orbitq.services.scheduling.world_sync import WorldSync

log = logging.getLogger(__name__)

# How often the Scheduler forgets what is over (bookings, contacts, timeline history).
PRUNE_EVERY_SECONDS = 3_600


class SchedulingLoop:
    def __init__(
        self,
        store: RequestStore,
        reservations: Reservations,
        constellation: Constellation,
        hub: TransitionHub,
        leader: LeaderLock,
        now: Callable[[], datetime],
        *,
        config: SchedulerConfig | None = None,
        start: Start | None = None,
        completion: Completion | None = None,
    ) -> None:
        self._store = store
        self._reservations = reservations
        self._constellation = constellation
        self._leader = leader
        self._now = now
        self.scheduler = Scheduler(config)
        moves = Moves(store, hub)
        self.world_sync = WorldSync(self.scheduler, constellation, moves)
        self.placing = Placing(self.scheduler, moves)
        self._advance = Advance(
            self.scheduler, moves, start or ClockStart(), completion or ClockCompletion()
        )
        self._lock = threading.Lock()
        self._cycle_listeners: list[Callable[[CycleReport, float], None]] = []
        self._pruned_at = 0

    def on_cycle(self, listener: Callable[[CycleReport, float], None]) -> None:
        """Call `listener(report, seconds)` after each cycle (metrics)."""
        self._cycle_listeners.append(listener)

    def run_cycle(self, now: datetime | None = None) -> CycleReport:
        """One scheduling cycle at `now` (default: the clock's)."""
        started = time.perf_counter()
        report = self._run_cycle(now)
        for listener in self._cycle_listeners:
            listener(report, time.perf_counter() - started)
        return report

    def _run_cycle(self, now: datetime | None) -> CycleReport:
        at = now or self._now()
        with self._lock:
            leading, fresh = self._leader.hold()
            if not leading:
                return CycleReport(ran=False)
            now_ns = to_ns(at)
            now_s = now_ns // NANOS_PER_SECOND
            evacuated = self.world_sync.sync(now_s, now_ns, fresh=fresh)
            report = self.placing.run(now_s, now_ns)
            self._check_notice_margin(at)
            resolve_owed(self._store, self._reservations, now_s, now_ns)
            if now_s - self._pruned_at >= PRUNE_EVERY_SECONDS:
                self.scheduler.prune(now_s)
                self._pruned_at = now_s
            return replace(report, evacuated=evacuated)

    def _check_notice_margin(self, at: datetime) -> None:
        """With a notice of new work, pulls promise agents the notice less the margin: a
        cycle that committed later than that after its `now` may have placed work inside a
        promise (its ticket is then not pulled in time and the request placed again). Said
        loudly, since nothing else shows it (docs/agent.md, "Pulling less")."""
        if self.scheduler.config.uplink_notice_seconds <= 0:
            return
        late = (self._now() - at).total_seconds()
        if late > UPLINK_NOTICE_MARGIN_SECONDS:
            log.warning(
                "a scheduling cycle committed %.0f s after its start, more than the pull"
                " notice's margin of %d s: work it placed may miss its tickets' pulls; place"
                " smaller batches or raise ticket_pull_notice_seconds",
                late,
                UPLINK_NOTICE_MARGIN_SECONDS,
            )

    def advance(self, now: datetime | None = None) -> AdvanceReport:
        """Transitions time alone makes, up to `now` (default: the clock's)."""
        at = now or self._now()
        with self._lock:
            leading, fresh = self._leader.hold()
            if not leading:
                return AdvanceReport(ran=False)
            if fresh:
                self.world_sync.forget()  # the next cycle rebuilds from the database
            now_ns = to_ns(at)
            now_s = now_ns // NANOS_PER_SECOND
            report = self._advance.run(now_s, now_ns)
            resolved = resolve_owed(self._store, self._reservations, now_s, now_ns)
            return replace(report, resolved=resolved)

    def tick(self, now: datetime | None = None) -> tuple[AdvanceReport, CycleReport]:
        """`advance`, then `run_cycle`, at one instant: what the broker's job runs."""
        at = now or self._now()
        return self.advance(at), self.run_cycle(at)

    def schedule_document(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> dict[str, Any]:
        """The §9 document of the stored schedule over [start, end) (default: the span of all
        requests' windows)."""
        return stored_schedule(self._store, self._constellation, start, end)

    def close(self) -> None:
        """This broker stops scheduling: give up the leader lock, so another replica takes
        over at once."""
        self._leader.release()
