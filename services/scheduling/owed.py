"""Owed reservations: terminal requests whose reservation the ledger still holds.

Owns: `resolve_owed` — every terminal request whose reservation is still open is released
(or, when charged, settled with its charge: against its usage receipt when it has one) in
batches, and its reservation closed in the store (requests.settlement does each batch). A
terminal transition is made durable first, then the ledger operation, then the reservation is
marked closed, so a crash in between leaves it owed (`due_s` 0) and the next
pass resolves it; what the ledger refuses is logged by the reservations and retried next pass.

Does not own: the transfers themselves (requests.reservations) or when a request becomes
terminal (the other jobs; cancellation releases at once in its RPC).
"""

from __future__ import annotations

from orbitq.services.requests.model import TERMINAL_STATES
from orbitq.services.requests.reservations import Reservations
from orbitq.services.requests.settlement import resolve
from orbitq.services.requests.store import RequestStore
from orbitq.services.scheduling.moves import DUE_BATCH_MAX, DUE_BATCHES_MAX


def resolve_owed(
    store: RequestStore, reservations: Reservations, now_s: int, now_ns: int
) -> tuple[str, ...]:
    """Release or settle the reservations of terminal requests the ledger still holds; the
    ids resolved."""
    resolved: list[str] = []
    for _ in range(DUE_BATCHES_MAX):
        owed = store.due(TERMINAL_STATES, now_s, DUE_BATCH_MAX)
        if not owed:
            break
        done = resolve(store, reservations, owed, now_ns)
        resolved.extend(done)
        if len(done) < len(owed) or len(owed) < DUE_BATCH_MAX:
            break  # what the ledger refused was logged; the next pass retries it
    return tuple(resolved)
