"""Advance: the transitions time makes, in order, so a pass long after the fact takes a request
through all of them.

Owns: `Advance` — waiting (SUBMITTED, PENDING) requests whose deadline passed → EXPIRED; then
placed work that started → RUNNING (start.py decides which); then running work that ended →
COMPLETED with its charge (completion.py decides which and what), its booking released from
the Scheduler. Each step moves at most DUE_BATCH_MAX requests a query, DUE_BATCHES_MAX queries.

Does not own: the leader lock (loop.py), the owed reservations of what ended (owed.py), or the
transitions a cycle makes (placing.py).
"""

from __future__ import annotations

from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import RequestState, StoredRequest
from orbitq.services.scheduler import Scheduler, rfc3339
from orbitq.services.scheduling.completion import Completion
from orbitq.services.scheduling.moves import Moves
from orbitq.services.scheduling.reports import AdvanceReport
from orbitq.services.scheduling.start import Start

S = RequestState
WAITING_STATES = frozenset({S.SUBMITTED, S.PENDING})


class Advance:
    def __init__(
        self, scheduler: Scheduler, moves: Moves, start: Start, completion: Completion
    ) -> None:
        self._scheduler = scheduler
        self._moves = moves
        self._start = start
        self._completion = completion

    def run(self, now_s: int, now_ns: int) -> AdvanceReport:
        """Every transition time has made due by `now_s` (owed reservations aside)."""
        expired = self._moves.due(WAITING_STATES, now_s, now_ns, expire_move)
        started = self._start.start(self._moves, now_s, now_ns)
        completed = self._completion.complete(self._moves, now_s, now_ns)
        for request_id in completed:
            self._scheduler.release(request_id)
        return AdvanceReport(True, started, completed, expired)


def expire_move(request: StoredRequest) -> Move:
    return Move(
        request.id,
        WAITING_STATES,
        S.EXPIRED,
        f"the deadline {rfc3339(request.spec.deadline)} passed before it could be placed",
    )
