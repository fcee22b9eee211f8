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
from dataclasses import replace

import sqlalchemy as sa

from orbitq.ledger.entries import EvidenceKind
from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import StoredRequest
from orbitq.services.requests.reservations import Reservations
from orbitq.services.requests.store import RequestStore
from orbitq.services.scheduler import Cost

ZERO = Cost(0, 0, 0)


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
    ended = replace(
        request,
        state=final.to,
        fault=final.fault,
        settled=final.settled or ZERO,
        receipt_digest=final.receipt.digest,
    )
    charge = ended.settled if ended.charged else None
    digest = final.receipt.digest
    written: list[tuple[StoredRequest, int | None]] = []

    def attached(connection: sa.Connection, settled: Cost | None) -> None:
        results = store.apply_on(connection, moves, now_ns)
        after = results[-1]
        if after is None:
            raise MovedOnError(f"request {request.id} moved on while its receipt was checked")
        entry = _receipt_entry(connection, digest) if charge is not None else None
        entries = {request.id: entry} if entry is not None else {}
        store.close_reservations_on(connection, {request.id: settled}, now_ns, entries)
        closed = replace(after, reservation_open=False, settled=settled or after.settled)
        written[:] = [(closed, entry)]

    receipt = envelope if charge is not None else None
    if not reservations.resolve_attached(ended, charge, receipt, attached):
        return None
    # The attached write ran (and committed) in the writer's thread: what it stored, without
    # reading it back.
    return written[0]


class MovedOnError(Exception):
    """The request was no longer where the receipt's moves expected it."""


def _receipt_entry(connection: sa.Connection, digest: bytes) -> int:
    """The receipt's entry in the signed log. The group wrote it in this very transaction,
    before the attached writes (E5: evidence first), so it is read back here rather than
    awaited: the request's row records it in the same commit."""
    row = connection.execute(
        sa.text(
            "SELECT entry_index FROM ledger_evidence WHERE digest = :digest AND kind = :kind"
            " ORDER BY entry_index LIMIT 1"
        ),
        {"digest": digest, "kind": int(EvidenceKind.RECEIPT)},
    ).first()
    assert row is not None, "the group records the receipt before its attached writes"
    return int(row[0])
