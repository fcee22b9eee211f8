"""Resolving ended requests in the ledger: each one's reservation settled or released once.

Owns: `end_and_settle` — ReportReceipt's path: a request ended by its usage receipt and its
reservation resolved in one ledger item (the store's rows written as the item's attached
write). And `resolve` — for terminal requests whose reservation the ledger still holds, what each
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

import sqlalchemy as sa

from orbitq.ledger.store import AttachedWriteError
from orbitq.services.requests.lifecycle import Move
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


def end_and_settle(
    store: RequestStore,
    reservations: Reservations,
    request: StoredRequest,
    moves: Sequence[Move],
    envelope: bytes,
    now_ns: int,
) -> tuple[StoredRequest, int | None] | None:
    """End `request` by its usage receipt (`moves`, the last one terminal and carrying the
    receipt) and resolve its reservation in ONE ledger item: the moves (the receipt's row, the
    transitions) and the reservation's close (with the receipt's entry in the signed log) are
    the item's attached write, committed in the same transaction as the receipt's evidence
    entry and its transfers — one group commit instead of three durable transactions, and
    atomic: no crash leaves the receipt stored but not settled.

    Returns the request as stored after, with the receipt's entry in the signed log (None when
    nothing was charged against it); None when the ledger refused a transfer (nothing of
    the moves was written: the caller ends it the two-step way, and the owed pass retries its
    settlement). Raises AttachedWriteError when the request moved on meanwhile (nothing of
    the item was written)."""
    final = moves[-1]
    assert final.to.terminal
    assert final.receipt is not None
    # The rows are worked out here, in the caller's thread: the writer's thread, which every
    # group commit waits on, only executes the statements.
    end = store.plan_receipt_end(request, moves, now_ns)
    if end is None:
        raise AttachedWriteError(f"request {request.id} is not where its receipt's moves start")
    charge = end.after.settled if end.after.charged else None
    written: list[StoredRequest] = []

    def attached(connection: sa.Connection, settled: Cost | None) -> None:
        stored = store.write_receipt_end_on(connection, end, settled, with_entry=charge is not None)
        if stored is None:
            raise MovedOnError(f"request {request.id} moved on while its receipt was checked")
        written[:] = [stored]

    receipt = envelope if charge is not None else None
    result = reservations.resolve_attached(end.after, charge, receipt, attached)
    if result is None:
        return None
    # The attached write ran (and committed) in the writer's thread: what it stored, without
    # reading it back, and the receipt's entry as the ledger recorded it (the entry the
    # receipt's row was given in the same transaction).
    assert written, "the item committed without its attached write"
    if charge is None:
        return written[0], None
    assert result.evidence is not None
    return written[0], result.evidence.entry_index


class MovedOnError(Exception):
    """The request was no longer where the receipt's moves expected it."""
