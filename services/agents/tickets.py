"""Tickets: the signed placements the node agents pull at their uplink contact.

Owns:
- which tickets are due for a node: its PLACED requests whose pull window has opened (with the
  contact tolerance) and whose start has not come (opens_at - tolerance <= now < start;
  service.py says when a window opens: the uplink instant, or the pull lead before it);
- making a ticket (docs/agent-format.md T-rules; orbitq.ledger.tickets signs it with the
  ticket key): issuer the broker's origin, subject the node, id the request, not-before the
  issue time minus TICKET_SKEW_SECONDS, expiry the placement's end, the placement's times,
  the request's limits (output bytes = output_mb MB; fuel_max = the reserved cpu core-seconds
  times the node's enrolled fuel rate), the downlink plan, the module's and input's digests
  and sizes, the node's downlink rate and the uplink seconds of module and input at the
  node's uplink rate;
- storing each ticket once per placement (`request_tickets`, keyed by the request and its
  sequence number at placement), so a re-pull returns the same bytes, and marking it pulled —
  what the start seam asks (`pulled`);
- which blobs a node may fetch: those a ticket of its node names.

Does not own: the ticket format (orbitq.ledger.tickets), gating or permissions (service.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from orbitq.ledger.store.dialect import is_unique_violation
from orbitq.ledger.tickets import DownlinkWindow, Ticket, sign_ticket
from orbitq.services.agents.tables import TICKETS
from orbitq.services.agents.ticket_key import TicketSigner
from orbitq.services.blobs import digests
from orbitq.services.blobs.store import BlobStore
from orbitq.services.clock import NANOS_PER_SECOND
from orbitq.services.constellation import NodeRecord
from orbitq.services.db.engine import (
    IN_LIST_VALUES_MAX,
    driver_execute,
    driver_row,
    driver_rows,
    write_transaction,
)
from orbitq.services.requests.model import BYTES_PER_MB, RequestState, StoredRequest
from orbitq.services.requests.store import PlacedUplink, RequestStore
from orbitq.services.scheduler.costs import BITS_PER_BYTE, ceil_div

log = logging.getLogger(__name__)

# A ticket is valid from this long before it was issued (agents' clocks drift).
TICKET_SKEW_SECONDS = 60
# Tickets per pull (0 asks for this many).
TICKETS_PER_PULL_MAX = 100
# PLACED requests of a node looked at per pull.
PLACED_SCANNED_MAX = 1_000
BITS_PER_MEGABIT = 1_000_000
# A request's latest ticket (its current placement's), as the driver's SQL (`current_on`).
_LATEST_TICKET_SQL = (
    "SELECT * FROM request_tickets WHERE request_id = ? ORDER BY placement_sequence DESC LIMIT 1"
)
_TICKET_SQL = "SELECT * FROM request_tickets WHERE request_id = ? AND placement_sequence = ?"
# One placement's ticket in `_made`'s read, and the placements one read asks for (two values
# each, within the bound on a statement's values).
_PAIR_CLAUSE = "(request_id = ? AND placement_sequence = ?)"
_PAIRS_PER_READ_MAX = IN_LIST_VALUES_MAX // 2
_TICKET_COLUMNS = (
    "request_id",
    "placement_sequence",
    "node",
    "envelope",
    "digest",
    "workload_digest",
    "input_digest",
    "fuel_max",
    "output_bytes_max",
    "start_s",
    "uplink_seconds",
    "issued_ns",
    "pulled_ns",
)
_INSERT_TICKET_SQL = (
    f"INSERT INTO request_tickets ({', '.join(_TICKET_COLUMNS)})"  # noqa: S608  (names only)
    f" VALUES ({', '.join('?' * len(_TICKET_COLUMNS))})"
)
# Whether a ticket of a node names a blob (`names_blob`).
_NAMES_BLOB_SQL = (
    "SELECT request_id FROM request_tickets"
    " WHERE node = ? AND (workload_digest = ? OR input_digest = ?) LIMIT 1"
)


def _made_sql(pairs: int) -> str:
    """`_made`'s read of `pairs` placements (placeholders only: no value is in the text)."""
    return "SELECT * FROM request_tickets WHERE " + " OR ".join([_PAIR_CLAUSE] * pairs)  # noqa: S608


@dataclass(frozen=True, slots=True)
class StoredTicket:
    request_id: str
    placement_sequence: int
    node: str
    envelope: bytes
    digest: bytes
    workload_digest: str
    input_digest: str | None
    fuel_max: int
    output_bytes_max: int
    start_s: int
    uplink_seconds: int
    pulled: bool


def _ticket_of(mapping: Mapping[Any, Any]) -> StoredTicket:
    return StoredTicket(
        request_id=mapping["request_id"],
        placement_sequence=int(mapping["placement_sequence"]),
        node=mapping["node"],
        envelope=bytes(mapping["envelope"]),
        digest=bytes(mapping["digest"]),
        workload_digest=mapping["workload_digest"],
        input_digest=mapping["input_digest"],
        fuel_max=int(mapping["fuel_max"]),
        output_bytes_max=int(mapping["output_bytes_max"]),
        start_s=int(mapping["start_s"]),
        uplink_seconds=int(mapping["uplink_seconds"]),
        pulled=mapping["pulled_ns"] is not None,
    )


@dataclass(frozen=True, slots=True)
class Due:
    """A pull's tickets, and the earliest instant (seconds) a pull window of the node's other
    placements opens, tolerance included (None: no other placement)."""

    tickets: list[StoredTicket]
    next_opens_s: int | None


class Tickets:
    def __init__(
        self,
        engine: sa.Engine,
        store: RequestStore,
        blobs: BlobStore,
        signer: TicketSigner,
        now_ns: Callable[[], int],
    ) -> None:
        self._engine = engine
        self._store = store
        self._blobs = blobs
        self._signer = signer
        self._now_ns = now_ns

    # -- pulling -------------------------------------------------------------------------------

    def pull(
        self,
        node: NodeRecord,
        tolerance_seconds: int,
        limit: int,
        opens_at: Callable[[PlacedUplink], int],
    ) -> Due:
        """The node's due tickets (made at the first pull, the same bytes after), marked
        pulled, and when the next of its placements already made opens (`Due.next_opens_s`).
        A PLACED request is due from `opens_at(it)` (seconds; the uplink instant, or a lead
        before it: service.py) less the tolerance, until its start.

        A node polls often and most polls find nothing new: one narrow read of its future
        placements, one read of the tickets already made for the due ones, a write only for
        tickets made or pulled for the first time."""
        now_ns = self._now_ns()
        now_s = now_ns // NANOS_PER_SECOND
        scanned = self._store.placed_uplinks(node.id, now_s, PLACED_SCANNED_MAX)
        due: list[PlacedUplink] = []
        later: list[int] = []
        for placed in scanned:
            opens = opens_at(placed) - tolerance_seconds
            if opens > now_s:
                later.append(opens)
            elif now_s < placed.start:
                due.append(placed)
        if len(due) > limit:
            later.append(now_s)  # more are due than one pull carries: pull again at once
            due = due[:limit]
        if len(scanned) >= PLACED_SCANNED_MAX:
            later.append(scanned[-1].start)  # placements past the scan start after this
        next_opens = min(later) if later else None
        return Due(self._due_tickets(node, due, now_ns), next_opens)

    def _due_tickets(
        self, node: NodeRecord, due: Sequence[PlacedUplink], now_ns: int
    ) -> list[StoredTicket]:
        if not due:
            return []
        made = self._made([(p.request_id, p.sequence) for p in due])
        missing = [p.request_id for p in due if (p.request_id, p.sequence) not in made]
        if missing:
            for request in self._store.fetch(missing):
                if request.state is not RequestState.PLACED or request.placement is None:
                    continue  # moved on since the read above
                ticket = self._make(node, request, now_ns)
                if ticket is not None:
                    made[(ticket.request_id, ticket.placement_sequence)] = ticket
        tickets = [
            made[(p.request_id, p.sequence)] for p in due if (p.request_id, p.sequence) in made
        ]
        self._mark_pulled(
            [(t.request_id, t.placement_sequence) for t in tickets if not t.pulled], now_ns
        )
        return tickets

    def _made(self, placements: Sequence[tuple[str, int]]) -> dict[tuple[str, int], StoredTicket]:
        """The tickets already made for these (request id, placement sequence)."""
        # Through the driver's cursor (PullTickets' hot read, as `placed_uplinks`), by
        # primary key: at most one row per pair asked.
        pairs = sorted(set(placements))
        found: dict[tuple[str, int], StoredTicket] = {}
        with self._engine.connect() as connection:
            for first in range(0, len(pairs), _PAIRS_PER_READ_MAX):
                chunk = pairs[first : first + _PAIRS_PER_READ_MAX]
                rows = driver_rows(
                    connection,
                    _made_sql(len(chunk)),
                    [value for pair in chunk for value in pair],
                    len(chunk),
                )
                for row in rows:
                    ticket = _ticket_of(row)
                    found[(ticket.request_id, ticket.placement_sequence)] = ticket
        return found

    def _make(self, node: NodeRecord, request: StoredRequest, now_ns: int) -> StoredTicket | None:
        agent = node.agent
        placement = request.placement
        assert agent is not None
        assert placement is not None
        spec = request.spec
        if not digests.is_digest(spec.workload):
            log.error(
                "request %s names no module (%r): no ticket can be made", request.id, spec.workload
            )
            return None
        workload = digests.parse(spec.workload)
        input_hex = digests.parse(spec.input, "input") if spec.input else None
        module_bytes = self._blobs.size(workload) or 0
        input_bytes = (self._blobs.size(input_hex) or 0) if input_hex else 0
        uplink_seconds = ceil_div(
            (module_bytes + input_bytes) * BITS_PER_BYTE,
            node.capacity.uplink_mbps * BITS_PER_MEGABIT,
        )
        now_s = now_ns // NANOS_PER_SECOND
        ticket = Ticket(
            issuer=self._signer.issuer,
            node=node.id,
            request_id=request.id,
            issued_at=now_s,
            not_before=now_s - TICKET_SKEW_SECONDS,
            expires=placement.end,
            start=placement.start,
            end=placement.end,
            run_seconds=spec.run_seconds,
            cpu_millicores=spec.cpu_millicores,
            storage_mb=spec.storage_mb,
            output_bytes_max=spec.output_mb * BYTES_PER_MB,
            fuel_max=request.reserved.cpu * agent.fuel_per_core_second,
            downlink=tuple(DownlinkWindow(s.station, s.start, s.end) for s in placement.downlink),
            workload_sha256=bytes.fromhex(workload),
            input_sha256=bytes.fromhex(input_hex) if input_hex else None,
            input_bytes=input_bytes,
            downlink_mbps=node.capacity.downlink_mbps,
            uplink_seconds=uplink_seconds,
        )
        envelope = sign_ticket(ticket, self._signer.private_key, self._signer.key_id)
        digest = hashlib.sha256(envelope).digest()
        row = {
            "request_id": request.id,
            "placement_sequence": request.sequence,
            "node": node.id,
            "envelope": envelope,
            "digest": digest,
            "workload_digest": workload,
            "input_digest": input_hex,
            "fuel_max": ticket.fuel_max,
            "output_bytes_max": ticket.output_bytes_max,
            "start_s": placement.start,
            "uplink_seconds": uplink_seconds,
            "issued_ns": now_ns,
            # Made by this pull, for this pull: pulled now (one write, not a second one).
            "pulled_ns": now_ns,
        }
        try:
            # One simple statement per ticket made: through the driver's cursor.
            with write_transaction(self._engine) as connection:
                driver_execute(connection, _INSERT_TICKET_SQL, [row[c] for c in _TICKET_COLUMNS])
        except Exception as error:  # the driver's own IntegrityError (sqlite3's, psycopg's)
            if not is_unique_violation(error):
                raise
            # Another pull made it meanwhile: that one is the ticket (marked pulled after).
            return self.current(request.id, request.sequence)
        return StoredTicket(
            request_id=request.id,
            placement_sequence=request.sequence,
            node=node.id,
            envelope=envelope,
            digest=digest,
            workload_digest=workload,
            input_digest=input_hex,
            fuel_max=ticket.fuel_max,
            output_bytes_max=ticket.output_bytes_max,
            start_s=placement.start,
            uplink_seconds=uplink_seconds,
            pulled=True,
        )

    def _mark_pulled(self, keys: Sequence[tuple[str, int]], now_ns: int) -> None:
        if not keys:
            return
        with write_transaction(self._engine) as connection:
            for request_id, sequence in keys:
                connection.execute(
                    sa.update(TICKETS)
                    .where(TICKETS.c.request_id == request_id)
                    .where(TICKETS.c.placement_sequence == sequence)
                    .where(TICKETS.c.pulled_ns.is_(None))
                    .values(pulled_ns=now_ns)
                )

    # -- reads ---------------------------------------------------------------------------------

    def current(
        self, request_id: str, placement_sequence: int | None = None
    ) -> StoredTicket | None:
        """The request's ticket for the placement of that sequence (None: its latest)."""
        # Through the driver's cursor: OpenResult asks on every call.
        with self._engine.connect() as connection:
            if placement_sequence is None:
                row = driver_row(connection, _LATEST_TICKET_SQL, (request_id,))
            else:
                row = driver_row(connection, _TICKET_SQL, (request_id, placement_sequence))
        return _ticket_of(row) if row is not None else None

    def current_on(self, connection: sa.Connection, request_id: str) -> StoredTicket | None:
        """`current` (the latest) through `connection` (ReportReceipt: one read connection
        for its checks)."""
        row = driver_row(connection, _LATEST_TICKET_SQL, (request_id,))
        return _ticket_of(row) if row is not None else None

    def pulled(self, placements: Sequence[tuple[str, int]]) -> set[str]:
        """Of these (request id, placement sequence), the requests whose ticket was pulled."""
        wanted = set(placements)
        found: set[str] = set()
        ids = sorted({request_id for request_id, _ in placements})
        with self._engine.connect() as connection:
            for first in range(0, len(ids), IN_LIST_VALUES_MAX):
                rows = connection.execute(
                    sa.select(TICKETS.c.request_id, TICKETS.c.placement_sequence)
                    .where(TICKETS.c.request_id.in_(ids[first : first + IN_LIST_VALUES_MAX]))
                    .where(TICKETS.c.pulled_ns.is_not(None))
                )
                found.update(
                    str(request_id)
                    for request_id, sequence in rows
                    if (request_id, int(sequence)) in wanted
                )
        return found

    def names_blob(self, node: str, digest_hex: str) -> bool:
        """Whether a ticket of `node` names this module or input."""
        # Through the driver's cursor: FetchBlob asks on every chunk.
        with self._engine.connect() as connection:
            return (
                driver_row(connection, _NAMES_BLOB_SQL, (node, digest_hex, digest_hex)) is not None
            )
