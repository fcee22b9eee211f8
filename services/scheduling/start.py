"""Start: when placed work is known to have started (PLACED → RUNNING).

Owns: the `Start` seam and its two forms:
- `TicketStart` (settlement "receipts", the default): at its placement's start, a PLACED
  request whose ticket the node's agent pulled is RUNNING (the agent runs it at that instant,
  on its own). One whose ticket was never pulled is the operator's fault
  (requests.faults: back to PENDING while the deadline leaves room, else FAILED, refunded);
- `ClockStart` (settlement "plan"): placed work starts exactly as placed, at its start.

Does not own: the pass that calls it (advance.py), the transition table (requests.lifecycle)
or the tickets (orbitq.services.agents, reached through `PulledTickets`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from orbitq.services.requests.faults import operator_fault
from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import RequestState, StoredRequest
from orbitq.services.scheduler import rfc3339
from orbitq.services.scheduling.moves import Moves

log = logging.getLogger(__name__)

S = RequestState
PLACED_ONLY = frozenset({S.PLACED})


class Start(Protocol):
    def start(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        """Move to RUNNING the placed work known to have started by `now_s`; the ids moved."""
        ...


class PulledTickets(Protocol):
    def pulled(self, placements: Sequence[tuple[str, int]]) -> set[str]:
        """Of these (request id, placement sequence), the requests whose ticket for that
        placement a node agent pulled."""
        ...


class ClockStart:
    """Placed work starts at its placement's start (settlement "plan": no node agent)."""

    def start(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        return moves.due(PLACED_ONLY, now_s, now_ns, start_move)


class TicketStart:
    """Placed work starts at its start if its ticket was pulled; else the operator failed it."""

    def __init__(self, tickets: PulledTickets) -> None:
        self._tickets = tickets

    def start(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        def make(due: list[StoredRequest]) -> list[Move]:
            pulled = self._tickets.pulled([(r.id, r.sequence) for r in due])
            return [start_move(r) if r.id in pulled else missed_move(r, now_s) for r in due]

        moved = moves.due_batches(PLACED_ONLY, now_s, now_ns, make)
        for request in moved:
            if request.state is not S.RUNNING:
                log.warning("request %s: %s", request.id, request.reason)
        return tuple(r.id for r in moved if r.state is S.RUNNING)


def start_move(request: StoredRequest) -> Move:
    placement = request.placement
    assert placement is not None
    return Move(
        request.id,
        PLACED_ONLY,
        S.RUNNING,
        f"started on node {placement.node} at {rfc3339(placement.start)}",
    )


def missed_move(request: StoredRequest, now_s: int) -> Move:
    placement = request.placement
    assert placement is not None
    return operator_fault(
        request,
        now_s,
        f"node {placement.node}'s agent did not pull the ticket before the start"
        f" {rfc3339(placement.start)}",
    )
