"""Recovery at broker start: reservations that no request owns are released.

Owns: `recover`, run once by every broker as it starts (before it serves). Submit commits a
request's rows in the very ledger group that reserves its tokens (service.py), so no crash of
this version leaves one without the other. A broker of an earlier version reserved first and
stored the request after: killed in between, it left pending `reserve` transfers in escrow
that belong to no stored request (issue 12: seen after kill -9 on PostgreSQL), holding the
tenant's tokens until their timeout (the deadline + a grace of an hour). Recovery finds every
open `reserve` transfer whose request is not stored, or is stored without its reservation open
(it can own no pending transfer), and voids it through the ledger — a `void_pending` with the
id a release of that request has, never an edit of ledger rows — so a retry, or a second
replica doing the same at once, gets `exists`. What it finds and does is logged (WARNING), and
returned as a `RecoveryReport`.

A void is only sent for a pending transfer read from the ledger: a void of one that does not
exist would be recorded as failed under the release's id (A9). The transfers are read before
the requests, and Submit commits both at once, so a Submit on another replica is never taken
for an orphan.

Only `ledger_pending` and `ledger_transfers` are read here (open `reserve` transfers, in pages
by id; only those whose id is the one derived from the request id in their `user_data`, so an
operator's own pending transfer with code `reserve` is never touched); every write goes
through the ledger's writer.

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
from orbitq.services.requests.model import StoredRequest
from orbitq.services.requests.reservations import (
    REQUESTS_PER_BATCH_MAX,
    Reservations,
    Step,
    transfer_id,
)
from orbitq.services.requests.store import RequestStore

log = logging.getLogger(__name__)

_PENDING: sa.Table = PendingRow.__table__  # type: ignore[attr-defined]
_TRANSFERS: sa.Table = TransferRow.__table__  # type: ignore[attr-defined]
# Open reservations read per query, and at most this many queries (a million live
# reservations: far above any deployment's; the rest would wait for their timeouts).
PAGE_ROWS = 500
PAGES_MAX = 2_000


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """Request ids: those whose orphaned reservation was voided; those whose orphaned
    reservation the ledger refused to void now (logged; their timeout releases them)."""

    released: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.released or self.unresolved)


def recover(engine: sa.Engine, store: RequestStore, reservations: Reservations) -> RecoveryReport:
    """Void the reservations no request owns (see the module docstring)."""
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
            elif not request.reservation_open:
                stored.append(request)
        if stored or unowned:
            crashpoint.reached("recovery.found")
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
    report = RecoveryReport(tuple(released), tuple(unresolved))
    _log(report)
    return report


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
        for raw_id, user_data, kind in rows:
            data = bytes(user_data or b"")
            # A request's reservation has the id derived from its request id and kind; any
            # other pending `reserve` (an operator's own two-phase transfer) is not ours.
            if len(data) != 16 or int.from_bytes(bytes(raw_id), "big") != transfer_id(
                data.hex(), Step.RESERVE, Kind(kind)
            ):
                continue
            page.setdefault(data.hex(), []).append(Kind(kind))
        yield page
        if len(rows) < PAGE_ROWS:
            return
        after = bytes(rows[-1][0])


def _log(report: RecoveryReport) -> None:
    if report.clean:
        log.info("recovery: no orphaned reservation")
        return
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
        "recovery: %d orphaned reservation(s) released, %d left to their timeout",
        len(report.released),
        len(report.unresolved),
    )
