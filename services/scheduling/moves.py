"""Transitions made durable for the loop's jobs, and announced.

Owns: `Moves` — the request store and the transition hub as every job of the loop uses them:
`apply` (a batch of moves in one transaction, then one announcement to watchers) and `due`
(the requests time has made due in some states, each turned into a move, in bounded batches) —
and the bounds of one pass: at most DUE_BATCH_MAX requests a query and DUE_BATCHES_MAX queries;
what is left waits for the next pass (seconds later).

Does not own: which moves to make (the jobs), the transition table (requests.lifecycle) or the
tables (requests.store).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import RequestState, StoredRequest
from orbitq.services.requests.store import RequestStore
from orbitq.services.requests.watch import TransitionHub

DUE_BATCH_MAX = 1_000
DUE_BATCHES_MAX = 100


class Moves:
    def __init__(self, store: RequestStore, hub: TransitionHub) -> None:
        self.store = store
        self.hub = hub

    def apply(self, moves: Sequence[Move], now_ns: int) -> list[str]:
        """Apply `moves`; the ids of the requests that moved (a request that moved on since
        the move was made is left as it is)."""
        if not moves:
            return []
        results = self.store.apply(moves, now_ns)
        self.hub.publish()
        return [r.id for r in results if r is not None]

    def due(
        self,
        states: frozenset[RequestState],
        now_s: int,
        now_ns: int,
        make: Callable[[StoredRequest], Move],
    ) -> tuple[str, ...]:
        """Move every request in `states` that time has made due by `now_s` with the move
        `make` gives it; the ids moved."""
        moved = self.due_batches(
            states, now_s, now_ns, lambda due: [make(request) for request in due]
        )
        return tuple(request.id for request in moved)

    def due_batches(
        self,
        states: frozenset[RequestState],
        now_s: int,
        now_ns: int,
        make: Callable[[list[StoredRequest]], list[Move]],
    ) -> list[StoredRequest]:
        """Like `due`, with the moves of each batch made at once (`make` may read what it
        needs for the whole batch in one query); the requests moved, as stored after."""
        moved: list[StoredRequest] = []
        for _ in range(DUE_BATCHES_MAX):
            due = self.store.due(states, now_s, DUE_BATCH_MAX)
            if not due:
                break
            results = self.store.apply(make(due), now_ns)
            moved.extend(r for r in results if r is not None)
            self.hub.publish()
            if len(due) < DUE_BATCH_MAX:
                break
        return moved
