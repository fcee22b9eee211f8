"""Resolving ended requests in the ledger: each one's reservation settled or released once.

Owns: `resolve` — for terminal requests whose reservation the ledger still holds, what each
needs: a charge settled against its usage receipt (in one ledger item with the receipt, whose
entry index is then stored with it), a charge settled from the plan (settlement "plan"), or a
release (a refund when the operator was at fault) — and marking them resolved in the store. The
order of a request's end (the durable transition first, then the ledger, then the store's mark)
makes a crash at any point leave it owed, and the next call resolves it with the same transfer
ids. Called by the scheduling loop's pass over owed reservations and by ReportReceipt, which
settles its request at once.

Does not own: the transfers (reservations.py) or when a request ends (the loop, the agents).
"""

from __future__ import annotations

from collections.abc import Sequence

from orbitq.services.requests.model import StoredRequest
from orbitq.services.requests.reservations import Reservations
from orbitq.services.requests.store import RequestStore
from orbitq.services.scheduler import Cost


def resolve(
    store: RequestStore,
    reservations: Reservations,
    owed: Sequence[StoredRequest],
    now_ns: int,
) -> dict[str, Cost | None]:
    """Settle or release `owed` (terminal, reservation open); {id: what was settled, None when
    released} for those the ledger resolved (the others were logged: a later call retries)."""
    by_receipt: list[tuple[StoredRequest, Cost, bytes]] = []
    by_plan: list[tuple[StoredRequest, Cost]] = []
    release: list[StoredRequest] = []
    for request in owed:
        if not request.charged:
            release.append(request)
        elif request.receipt_digest is None:
            by_plan.append((request, request.settled))
        else:
            found = store.receipt(request.id)
            assert found is not None, f"request {request.id}: its receipt row is missing"
            by_receipt.append((request, request.settled, found[0].envelope))
    done: dict[str, Cost | None] = {}
    entries: dict[str, int] = {}
    for request_id, (settled, entry_index) in reservations.settle_receipts(by_receipt).items():
        entries[request_id] = entry_index
        done[request_id] = settled
    if by_plan:
        done.update(reservations.settle(by_plan))
    if release:
        done.update(reservations.release(release))
    store.close_reservations(done, now_ns, entries)
    return done
