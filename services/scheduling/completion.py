"""Completion: when running work is known to have ended, and what it is charged
(RUNNING → COMPLETED).

Owns: the `Completion` seam and its two forms:
- `ReceiptDeadline` (settlement "receipts", the default): a verified usage receipt completes
  the work, charged what the receipt says (orbitq.services.agents: the ReportReceipt RPC makes
  the move); this pass deals only with receipts that never came — by the deadline plus the
  receipt grace the run is the operator's fault: FAILED, its reservation refunded;
- `ClockCompletion` (settlement "plan"): running work ends exactly as placed: when its last
  downlink segment ends the request moves to COMPLETED, settled with
  `placement_cost(request, placement)` capped at what was reserved (a node imported later with
  a slower link cannot overcharge).

Does not own: the pass that calls it (advance.py), the settlement in the ledger (owed.py,
requests.reservations) or the cost model (orbitq.services.scheduler.costs).
"""

from __future__ import annotations

import logging
from typing import Protocol

from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import Fault, RequestState, StoredRequest
from orbitq.services.requests.reservations import capped
from orbitq.services.scheduler import placement_cost, rfc3339
from orbitq.services.scheduling.moves import Moves

log = logging.getLogger(__name__)

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


class ReceiptDeadline:
    """Usage receipts complete running work (the ReportReceipt RPC makes the move); this pass
    fails, as the operator's fault, running work whose receipt has not come by its deadline
    plus the receipt grace (the store makes it due then): the reservation is refunded."""

    def __init__(self, receipt_grace: int) -> None:
        self._grace = receipt_grace

    def complete(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        failed = moves.due(RUNNING_ONLY, now_s, now_ns, self._move)
        for request_id in failed:
            log.warning("request %s: no usage receipt by its deadline + grace", request_id)
        return ()

    def _move(self, request: StoredRequest) -> Move:
        placement = request.placement
        assert placement is not None
        return Move(
            request.id,
            RUNNING_ONLY,
            S.FAILED,
            f"no usage receipt from node {placement.node} by the deadline"
            f" {rfc3339(request.spec.deadline)} + {self._grace:,} s; the reservation is"
            " refunded (operator fault)",
            fault=Fault.OPERATOR,
        )
