"""Evacuation: live work on nodes that went down.

Owns: `evacuation_moves` — for each PLACED or RUNNING request on a node that is down, its
booking released from the Scheduler and the move that says what becomes of it: not yet
uplinked → PENDING ("node X is down; placing it again"); started (the ticket is on board, or it
runs) → PENDING while now + run_seconds < deadline, else FAILED, the operator's fault (its
reservation is refunded). The same cycle may place the requests sent back to PENDING again.

Does not own: when node states are read (world_sync.py) or applying the moves (moves.py).
"""

from __future__ import annotations

from collections.abc import Set

from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import PLACED_STATES, Fault, RequestState, StoredRequest
from orbitq.services.requests.store import RequestStore
from orbitq.services.scheduler import Scheduler, rfc3339

S = RequestState
NODES_READ_ONE_BY_ONE_MAX = 64  # more nodes down at once: one read of all live work
LIVE_ON_NODE_MAX = 10_000  # a page of one node's live work; a full page reads all instead


def live_on(store: RequestStore, down: Set[str]) -> list[StoredRequest]:
    """The PLACED or RUNNING requests that may be on the nodes in `down`: read per node (an
    index) when few went down, so one state change costs O(its node's work), else all."""
    if len(down) > NODES_READ_ONE_BY_ONE_MAX:
        return store.in_states(PLACED_STATES)
    found: list[StoredRequest] = []
    for node in sorted(down):
        on_node = store.on_node(node, PLACED_STATES, LIVE_ON_NODE_MAX)
        if len(on_node) >= LIVE_ON_NODE_MAX:  # more than a page: read them all at once
            return store.in_states(PLACED_STATES)
        found.extend(on_node)
    return found


def evacuation_moves(
    scheduler: Scheduler, store: RequestStore, down: Set[str], now_s: int
) -> list[Move]:
    """Release the live work on the nodes in `down` from `scheduler`; its moves."""
    if not down:
        return []
    moves: list[Move] = []
    for request in live_on(store, down):
        placement = request.placement
        if placement is None or placement.node not in down:
            continue
        scheduler.release(request.id)
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
            moves.append(
                Move(
                    request.id,
                    frozenset({request.state}),
                    S.FAILED,
                    reason,
                    fault=Fault.OPERATOR,
                )
            )
    return moves
