"""Completion: when running work is known to have ended, and what it is charged
(RUNNING → COMPLETED).

Owns: the `Completion` seam and `ClockCompletion`, the default. Today no node agent reports,
so running work is taken to end exactly as placed: when its last downlink segment ends the
request moves to COMPLETED, settled with `placement_cost(request, placement)` capped at what
was reserved (a node imported later with a slower link cannot overcharge). The node-agent issue
(issue 11) replaces `ClockCompletion` with completion by a verified usage receipt: the agent's
signed receipt says what was used, and the charge is that usage (the RPC that takes the receipt
makes the move; a pass here would then deal only with receipts that never came).

Does not own: the pass that calls it (advance.py), the settlement in the ledger (owed.py,
requests.reservations) or the cost model (orbitq.services.scheduler.costs).
"""

from __future__ import annotations

from typing import Protocol

from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import RequestState, StoredRequest
from orbitq.services.requests.reservations import capped
from orbitq.services.scheduler import placement_cost, rfc3339
from orbitq.services.scheduling.moves import Moves

S = RequestState
RUNNING_ONLY = frozenset({S.RUNNING})


class Completion(Protocol):
    def complete(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        """Move to COMPLETED, with what each is charged (`Move.settled`), the running work
        known to have ended by `now_s`; the ids moved."""
        ...


class ClockCompletion:
    """Running work ends when its last downlink ends, charged what its placement costs."""

    def complete(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        return moves.due(RUNNING_ONLY, now_s, now_ns, finish_move)


def finish_move(request: StoredRequest) -> Move:
    placement = request.placement
    assert placement is not None
    charge = capped(placement_cost(request.request(), placement), request.reserved)
    return Move(
        request.id,
        RUNNING_ONLY,
        S.COMPLETED,
        f"completed on node {placement.node}: the last downlink ended at"
        f" {rfc3339(placement.finish)}; charged cpu {charge.cpu:,}, storage"
        f" {charge.storage:,}, link {charge.link:,}",
        settled=charge,
    )
