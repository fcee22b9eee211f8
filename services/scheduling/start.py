"""Start: when placed work is known to have started (PLACED → RUNNING).

Owns: the `Start` seam and `ClockStart`, the default. Today no node agent reports, so placed
work is taken to start exactly as placed: at its placement's start the request moves to
RUNNING. The node-agent issue (issue 11) replaces `ClockStart` with a start decided by the
agent pulling its signed ticket (the RPC makes the move; a pass here would then deal only with
tickets never pulled in time).

Does not own: the pass that calls it (advance.py) or the transition table (requests.lifecycle).
"""

from __future__ import annotations

from typing import Protocol

from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import RequestState, StoredRequest
from orbitq.services.scheduler import rfc3339
from orbitq.services.scheduling.moves import Moves

S = RequestState
PLACED_ONLY = frozenset({S.PLACED})


class Start(Protocol):
    def start(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        """Move to RUNNING the placed work known to have started by `now_s`; the ids moved."""
        ...


class ClockStart:
    """Placed work starts at its placement's start (no node agent reports yet)."""

    def start(self, moves: Moves, now_s: int, now_ns: int) -> tuple[str, ...]:
        return moves.due(PLACED_ONLY, now_s, now_ns, start_move)


def start_move(request: StoredRequest) -> Move:
    placement = request.placement
    assert placement is not None
    return Move(
        request.id,
        PLACED_ONLY,
        S.RUNNING,
        f"started on node {placement.node} at {rfc3339(placement.start)}",
    )
