"""Recovery at broker start: what a crash during Submit left half-way is finished or undone.

Owns: `recover`, run once by every broker as it starts (before it serves), and what it looks
for. Submit stores a request SUBMITTED, reserves its tokens, then moves it to PENDING
(service.py), so a process killed in between leaves one of:

1. **a SUBMITTED request** (killed before, during or after the reservation): it is moved to
   FAILED, the operator's fault ("the broker stopped while submitting it"), its reservation
   never opened. The tenant sees why; a retry with the same idempotency key returns it.
2. **a pending `reserve` transfer that belongs to no live request**: its request is not in the
   store at all (a broker of an earlier version reserved before storing), or is past SUBMITTED
   without its reservation open (step 1, or a Submit that lost its request to another
   replica's recovery and died before voiding). Each one is voided through the ledger — a
   `void_pending` with the id a release of that request has (code `refund` for a request that
   failed by the operator's fault, `release` otherwise), never an edit of ledger rows — so a
   retry, a second replica doing the same, or the request's own Submit get `exists`.

Everything found and done is logged (WARNING), and returned as a `RecoveryReport`.

With replicas on one PostgreSQL database, a replica that starts while another is inside a
Submit may fail that request in step 1: the other's move to PENDING then finds it FAILED and it
voids its own reservation (service.py), so the worst outcome is one failed submission, never
an orphan. A pending reservation is only ever voided after it was read from the ledger: a void
of one that does not exist yet would be recorded as failed under the release's id (A9).

Only `ledger_pending` and `ledger_transfers` are read here (open `reserve` transfers, in pages
by id); every write goes through the ledger's writer or the request store.

Does not own: the reservations' transfers (reservations.py), request storage (store.py), or
terminal requests whose reservation is still open — those are owed, and the scheduling loop
resolves them (orbitq.services.scheduling.owed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from orbitq.ledger.model import Code, Kind, PendingStatus
from orbitq.ledger.store.tables import PendingRow, TransferRow
from orbitq.services import crashpoint
from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.model import Fault, RequestState, StoredRequest
from orbitq.services.requests.reservations import REQUESTS_PER_BATCH_MAX, Reservations
from orbitq.services.requests.store import RequestStore

log = logging.getLogger(__name__)

S = RequestState
_PENDING: sa.Table = PendingRow.__table__  # type: ignore[attr-defined]
_TRANSFERS: sa.Table = TransferRow.__table__  # type: ignore[attr-defined]
# Requests moved per transaction, and pending transfers read per query.
PAGE_ROWS = 500
# Bounds on one recovery's work (far above anything a crash leaves: a crash interrupts at most
# as many Submits as there were RPC threads).
PAGES_MAX = 2_000
INTERRUPTED_REASON = (
    "the broker stopped while submitting this request, before its tokens were reserved for"
    " good; nothing is charged: submit it again with a new idempotency key"
)


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """Request ids: SUBMITTED ones failed; those whose orphaned reservation was voided; those
    whose orphaned reservation the ledger refused to void now (logged; their timeout
    releases them)."""

    failed: tuple[str, ...] = ()
    released: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.failed or self.released or self.unresolved)


def recover(
    engine: sa.Engine, store: RequestStore, reservations: Reservations, now_ns: int
) -> RecoveryReport:
    """Fail interrupted submissions, then void reservations no live request owns."""
    failed = _fail_interrupted(store, now_ns)
    crashpoint.reached("recovery.failed")
    released: list[str] = []
    unresolved: list[str] = []
    for page in _open_reservations(engine):
        owners = {r.id: r for r in store.fetch(sorted(page))}
        stored: list[StoredRequest] = []
        unowned: list[tuple[str, Kind]] = []
        for request_id, kinds in page.items():
            request = owners.get(request_id)
            if request is None:
                unowned.extend((request_id, kind) for kind in kinds)
            elif _orphaned(request):
                stored.append(request)
        for first in range(0, len(stored), REQUESTS_PER_BATCH_MAX):
            chunk = stored[first : first + REQUESTS_PER_BATCH_MAX]
            done = reservations.release(chunk)
            released.extend(r.id for r in chunk if r.id in done)
            unresolved.extend(r.id for r in chunk if r.id not in done)
        if unowned:
            done_unowned = reservations.void_unowned(unowned)
            ids = sorted({request_id for request_id, _ in unowned})
            released.extend(i for i in ids if i in done_unowned)
            unresolved.extend(i for i in ids if i not in done_unowned)
    report = RecoveryReport(tuple(failed), tuple(released), tuple(unresolved))
    _log(report)
    return report


def _orphaned(request: StoredRequest) -> bool:
    # SUBMITTED: a Submit (of another replica) is reserving for it right now. Open: the request
    # owns it (live), or owes its release or settlement (terminal: the scheduling loop's job).
    return request.state is not S.SUBMITTED and not request.reservation_open


def _fail_interrupted(store: RequestStore, now_ns: int) -> list[str]:
    failed: list[str] = []
    for _ in range(PAGES_MAX):
        interrupted = store.page(None, frozenset({S.SUBMITTED}), PAGE_ROWS, None)
        if not interrupted:
            break
        moves = [
            Move(r.id, frozenset({S.SUBMITTED}), S.FAILED, INTERRUPTED_REASON, fault=Fault.OPERATOR)
            for r in interrupted
        ]
        moved = [r.id for r in store.apply(moves, now_ns) if r is not None]
        failed.extend(moved)
        if len(interrupted) < PAGE_ROWS:
            break
    return failed


def _open_reservations(engine: sa.Engine) -> Iterator[dict[str, list[Kind]]]:
    """Open `reserve` transfers, a page at a time: {request id: kinds} (each page on its own
    connection, by transfer id)."""
    after = b""
    for _ in range(PAGES_MAX):
        query = (
            sa.select(_TRANSFERS.c.id, _TRANSFERS.c.user_data, _TRANSFERS.c.kind)
            .join(_PENDING, _PENDING.c.id == _TRANSFERS.c.id)
            .where(_PENDING.c.status == int(PendingStatus.PENDING))
            .where(_TRANSFERS.c.code == int(Code.RESERVE))
            .where(_TRANSFERS.c.id > after)
            .order_by(_TRANSFERS.c.id)
            .limit(PAGE_ROWS)
        )
        with engine.connect() as connection:
            rows = connection.execute(query).all()
        if not rows:
            return
        page: dict[str, list[Kind]] = {}
        for transfer_id, user_data, kind in rows:
            data = bytes(user_data or b"")
            if len(data) != 16:
                log.error(
                    "recovery: reserve transfer %s has no request id in its user_data; left to"
                    " its timeout",
                    bytes(transfer_id).hex(),
                )
                continue
            page.setdefault(data.hex(), []).append(Kind(kind))
        yield page
        if len(rows) < PAGE_ROWS:
            return
        after = bytes(rows[-1][0])


def _log(report: RecoveryReport) -> None:
    if report.clean:
        log.info("recovery: no interrupted submission and no orphaned reservation")
        return
    for request_id in report.failed:
        log.warning(
            "recovery: request %s was interrupted during Submit (SUBMITTED): now FAILED,"
            " operator's fault",
            request_id,
        )
    for request_id in report.released:
        log.warning(
            "recovery: released the orphaned reservation of request %s (no live request owned it)",
            request_id,
        )
    for request_id in report.unresolved:
        log.error(
            "recovery: the orphaned reservation of request %s could not be released now; the"
            " ledger releases it at its timeout",
            request_id,
        )
    log.warning(
        "recovery: %d interrupted submission(s) failed, %d orphaned reservation(s) released,"
        " %d left to their timeout",
        len(report.failed),
        len(report.released),
        len(report.unresolved),
    )
