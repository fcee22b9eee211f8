"""Persistence of requests and their transitions, on SQLite and PostgreSQL.

Owns: the SQL of the `requests`, `request_transitions` (migration 0003) and
`request_receipts` (0005) tables: inserting a new request with its first transitions in one
transaction, applying `Move`s — each a conditional transition that bumps the request's
sequence number and appends the numbered transition in the same transaction (with the usage
receipt it ended by, if any), or changes nothing when the request has moved on — closing
reservations, the queries the service, the scheduling loop and the node agents need, and rows
<-> values (`spec` and `placement` are JSON with sorted keys and integer seconds).

Every write transaction is IMMEDIATE on SQLite, and on PostgreSQL locks the request's row
(`SELECT ... FOR UPDATE`) before checking its state: two writers that race on one request
(a cancellation and a scheduling cycle) serialise, and the second sees the first's result.
ReportReceipt's end is the exception: worked out from the request as read (`plan_receipt_end`)
and written in the ledger group's transaction as one UPDATE guarded by the sequence it was read
at (`write_receipt_end_on`, through the driver's cursor): a request moved meanwhile matches no
row, and nothing is written.

Does not own: which transitions exist (lifecycle.py) or what they mean for the ledger.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import SQLModel

from orbitq.ledger.entries import EvidenceKind
from orbitq.ledger.store import AttachedRows
from orbitq.services.db import models  # noqa: F401  (registers the tables)
from orbitq.services.db.engine import (
    IN_LIST_VALUES_MAX,
    driver_row,
    driver_rows,
    driver_sql,
    write_transaction,
)
from orbitq.services.requests.lifecycle import Move, check, due_s
from orbitq.services.requests.model import (
    REASON_CHARS_MAX,
    TERMINAL_STATES,
    Fault,
    ReceiptFacts,
    RequestSpec,
    RequestState,
    StoredRequest,
    Transition,
)
from orbitq.services.scheduler import (
    Contact,
    Cost,
    DownlinkSegment,
    Placement,
    Rejection,
    Uplink,
)

REQUESTS: sa.Table = SQLModel.metadata.tables["requests"]
TRANSITIONS: sa.Table = SQLModel.metadata.tables["request_transitions"]
RECEIPTS: sa.Table = SQLModel.metadata.tables["request_receipts"]

# close_reservations' statements, built once (bound names differ from the columns: SQLAlchemy
# reserves those for the SET clause).
_RECEIPT_ENTRY_UPDATE = (
    sa.update(RECEIPTS)
    .where(RECEIPTS.c.request_id == sa.bindparam("guard_id"))
    .values(entry_index=sa.bindparam("new_entry_index"))
)
_CLOSING = (
    sa.update(REQUESTS)
    .where(REQUESTS.c.id == sa.bindparam("guard_id"))
    .where(REQUESTS.c.reservation_open)
    # Not IN (...): an IN list binds as an "expanding" parameter, which executemany refuses.
    .where(sa.or_(*(REQUESTS.c.state == int(state) for state in sorted(TERMINAL_STATES))))
)
_CLOSE_VOIDED = _CLOSING.values(
    reservation_open=False, due_s=None, updated_ns=sa.bindparam("new_updated_ns")
)
_CLOSE_CHARGED = _CLOSING.values(
    reservation_open=False,
    due_s=None,
    updated_ns=sa.bindparam("new_updated_ns"),
    settled_cpu=sa.bindparam("new_settled_cpu"),
    settled_storage=sa.bindparam("new_settled_storage"),
    settled_link=sa.bindparam("new_settled_link"),
)

# ReportReceipt's writes, as the driver's SQL (`?` placeholders, `driver_sql` adapts them).
_TRANSITION_COLUMNS = ("request_id", "sequence", "from_state", "to_state", "at_ns", "reason")
_RECEIPT_COLUMNS = (
    "request_id",
    "digest",
    "envelope",
    "node",
    "node_public_key",
    "key_entry_index",
    "received_ns",
)
_INSERT_RECEIPT_SQL = (
    "INSERT INTO request_receipts (request_id, digest, envelope, node, node_public_key,"
    " key_entry_index, received_ns) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# With its ReceiptRecorded entry, which the same transaction wrote first (E5: evidence first):
# the entry is read inside the INSERT, not by another query. The caller learns the entry from
# the ledger item's result (the same lookup: the receipt's first entry with this digest), so
# the INSERT returns nothing: a RETURNING row is one more step of the statement, and every
# step gives up the GIL that the writer's thread then waits to get back.
_INSERT_RECEIPT_WITH_ENTRY_SQL = (
    "INSERT INTO request_receipts (request_id, digest, envelope, node, node_public_key,"
    " key_entry_index, received_ns, entry_index) VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT"
    " entry_index FROM ledger_evidence WHERE digest = ? AND kind = ? ORDER BY entry_index"
    " LIMIT 1))"
)
# A node's PLACED requests starting after an instant, by start (`placed_uplinks`); the
# statement uses the (placed_node, state) index as SQLAlchemy's did.
_PLACED_UPLINKS_SQL = (
    "SELECT id, sequence, placement FROM requests"
    " WHERE placed_node = ? AND state = ? AND due_s > ? ORDER BY due_s, id LIMIT ?"
)


def _fetch_sql(ids: int) -> str:
    """`fetch`'s read of `ids` requests (placeholders only: no value is in the text)."""
    return f"SELECT * FROM requests WHERE id IN ({', '.join('?' * ids)})"  # noqa: S608


# A receipt's end has one or two transitions (PLACED -> RUNNING first when the receipt came
# before the start was noticed).
TRANSITIONS_PER_RECEIPT_END_MAX = 2


@functools.lru_cache(maxsize=TRANSITIONS_PER_RECEIPT_END_MAX)
def _insert_transitions_sql(count: int) -> str:
    """One INSERT of `count` transitions (multi-row VALUES: one statement step, where
    executemany steps once per row)."""
    rows = ", ".join(["(?, ?, ?, ?, ?, ?)"] * count)  # placeholders only
    columns = "request_id, sequence, from_state, to_state, at_ns, reason"
    return f"INSERT INTO request_transitions ({columns}) VALUES {rows}"  # noqa: S608


@functools.lru_cache(maxsize=16)
def _receipt_end_sql(columns: tuple[str, ...]) -> str:
    """The guarded UPDATE of a request's end by its receipt, setting `columns` (names from
    this module, never from input)."""
    sets = ", ".join(f"{column} = ?" for column in columns)
    return f"UPDATE requests SET {sets} WHERE id = ? AND sequence = ?"  # noqa: S608


@dataclass(frozen=True, slots=True)
class ReceiptEnd:
    """A request's end by its usage receipt, worked out from the request as read (outside the
    ledger writer): its row's new values, its transitions' rows and its receipt's row. Written
    by `RequestStore.write_receipt_end_on` guarded by the sequence it was read at."""

    request: StoredRequest
    values: Mapping[str, Any]
    transitions: tuple[Mapping[str, Any], ...]
    receipt: Mapping[str, Any]
    after: StoredRequest


# How many requests' moves one write transaction of `RequestStore.apply` makes at most.
MOVED_REQUESTS_PER_TRANSACTION_MAX = 64


class DuplicateKeyError(Exception):
    """The tenant already has a request with this idempotency key."""


def new_request_id() -> str:
    """128 random bits as 32 lower-case hex digits (the ledger's user_data is those 16 bytes)."""
    while True:
        value = secrets.randbits(128)
        if 0 < value < 2**128 - 1:
            return f"{value:032x}"


class PlacedUplink(NamedTuple):
    """A PLACED request's uplink and start (RequestStore.placed_uplinks)."""

    request_id: str
    sequence: int
    uplink_contact: str
    uplink_at: int
    start: int


class RequestStore:
    """`receipt_grace`: usage receipts complete running work (due_s of RUNNING is then the
    deadline plus this grace); None: the clock does (due at the placement's finish)."""

    def __init__(self, engine: sa.Engine, receipt_grace: int | None = None) -> None:
        self._engine = engine
        self._receipt_grace = receipt_grace

    def _writing(self) -> AbstractContextManager[sa.Connection]:
        return write_transaction(self._engine)

    # -- writes --------------------------------------------------------------------------------

    def insert(self, request: StoredRequest, transitions: Sequence[Transition]) -> None:
        """Store a new request and its first transitions, or raise DuplicateKeyError."""
        rows = self.insert_rows(request, transitions)
        try:
            with self._writing() as connection:
                for table, values in rows.inserts:
                    connection.execute(table.insert(), list(values))
        except sa.exc.IntegrityError:
            if self.by_key(request.tenant, request.idempotency_key) is not None:
                raise DuplicateKeyError(request.idempotency_key) from None
            raise

    def insert_rows(
        self, request: StoredRequest, transitions: Sequence[Transition]
    ) -> AttachedRows:
        """A new request and its first transitions as rows for the caller's transaction
        (Submit: the ledger group that reserves for it, where the rows of the group's Submits
        go in one insert per table). A taken (tenant, key) fails the insert with
        sa.exc.IntegrityError."""
        assert transitions
        assert transitions[-1].sequence == request.sequence
        assert transitions[-1].to_state is request.state
        return AttachedRows(
            (
                (REQUESTS, (_row_of(request, self._receipt_grace),)),
                (TRANSITIONS, tuple(_transition_row(t) for t in transitions)),
            )
        )

    def apply(self, moves: Sequence[Move], now_ns: int) -> list[StoredRequest | None]:
        """Make each move whose request is still in one of its expected states, in order; per
        move the request as stored afterwards, or None if it did not apply (unknown, or the
        request had moved on). All the moves of one request commit together; a batch naming
        more than MOVED_REQUESTS_PER_TRANSACTION_MAX requests commits in several transactions,
        so a large scheduling cycle never holds the database's write lock (and the ledger
        writer behind it) for long. Each move is conditional on its request's state alone, so
        nothing across requests needs one transaction."""
        results: list[StoredRequest | None] = [None] * len(moves)
        for chunk in _chunks_by_request(moves, MOVED_REQUESTS_PER_TRANSACTION_MAX):
            with self._writing() as connection:
                stored = self.apply_on(connection, [moves[index] for index in chunk], now_ns)
            for index, request in zip(chunk, stored, strict=True):
                results[index] = request
        return results

    def apply_on(
        self, connection: sa.Connection, moves: Sequence[Move], now_ns: int
    ) -> list[StoredRequest | None]:
        """`apply` through `connection`, in the caller's transaction (ReportReceipt: the ledger
        group that settles the receipt)."""
        return _apply_moves(connection, moves, now_ns, self._receipt_grace)

    def plan_receipt_end(
        self, request: StoredRequest, moves: Sequence[Move], now_ns: int
    ) -> ReceiptEnd | None:
        """ReportReceipt's `moves` of `request` (as just read; the last one terminal, with the
        receipt) worked out before the ledger writer runs them, so its thread only executes
        statements; None when a move does not apply to the request as read."""
        return _plan_receipt_end(request, moves, now_ns, self._receipt_grace)

    def write_receipt_end_on(
        self,
        connection: sa.Connection,
        end: ReceiptEnd,
        settled: Cost | None,
        *,
        with_entry: bool,
    ) -> StoredRequest | None:
        """Write `end` through `connection`, in the caller's transaction (the ledger group that
        settles the receipt), and close the request's reservation with what was `settled`
        (None: released) as `close_reservations_on` would: one UPDATE guarded by the
        sequence the request was read at, its transitions, its receipt's row (`with_entry`:
        with the ReceiptRecorded entry this transaction wrote, which the ledger item's result
        names). The request as stored after; None when the request moved on since it was read
        (nothing written). Three statements of one step each: the row's lock is the guarded
        UPDATE itself (on PostgreSQL a concurrent writer's commit is re-checked against the
        guard)."""
        values = dict(end.values)
        if end.request.reservation_open:
            # The close of `close_reservations_on` (which needs the state terminal and the
            # reservation open: true here, the guard says the row is as read) in the same SET.
            values.update(reservation_open=False, due_s=None)
            if settled is not None:
                values.update(
                    settled_cpu=settled.cpu,
                    settled_storage=settled.storage,
                    settled_link=settled.link,
                )
        # The driver's own cursor, in the connection's transaction (as the ledger's store
        # does): SQLAlchemy's per-statement work was most of these statements' cost, and this
        # runs in the ledger writer's thread, which every group commit waits on.
        columns = tuple(sorted(values))
        transitions = end.transitions
        assert 0 < len(transitions) <= TRANSITIONS_PER_RECEIPT_END_MAX
        cursor = connection.connection.cursor()
        try:
            cursor.execute(
                driver_sql(connection, _receipt_end_sql(columns)),
                (*(values[column] for column in columns), end.request.id, end.request.sequence),
            )
            if cursor.rowcount != 1:
                return None
            cursor.execute(
                driver_sql(connection, _insert_transitions_sql(len(transitions))),
                tuple(row[column] for row in transitions for column in _TRANSITION_COLUMNS),
            )
            receipt = tuple(end.receipt[column] for column in _RECEIPT_COLUMNS)
            if with_entry:
                cursor.execute(
                    driver_sql(connection, _INSERT_RECEIPT_WITH_ENTRY_SQL),
                    (*receipt, end.receipt["digest"], int(EvidenceKind.RECEIPT)),
                )
            else:
                cursor.execute(driver_sql(connection, _INSERT_RECEIPT_SQL), receipt)
        finally:
            cursor.close()
        return replace(end.after, reservation_open=False, settled=settled or end.after.settled)

    def close_reservations(
        self,
        settled: Mapping[str, Cost | None],
        now_ns: int,
        receipt_entries: Mapping[str, int] | None = None,
    ) -> None:
        """The ledger no longer holds these terminal requests' reservations: record it, with
        the amounts actually settled (None: nothing was settled, the reservation was voided)
        and, for those settled against a usage receipt, the receipt's entry in the signed log
        (one transaction)."""
        if not settled:
            return
        with self._writing() as connection:
            self.close_reservations_on(connection, settled, now_ns, receipt_entries)

    def close_reservations_on(
        self,
        connection: sa.Connection,
        settled: Mapping[str, Cost | None],
        now_ns: int,
        receipt_entries: Mapping[str, int] | None = None,
    ) -> None:
        """`close_reservations` through `connection`, in the caller's transaction: one
        executemany per statement shape (statements built once), not a statement per request."""
        entries = [
            {"guard_id": request_id, "new_entry_index": entry_index}
            for request_id, entry_index in (receipt_entries or {}).items()
        ]
        if entries:
            connection.execute(_RECEIPT_ENTRY_UPDATE, entries)
        charged = [
            {
                "guard_id": request_id,
                "new_updated_ns": now_ns,
                "new_settled_cpu": cost.cpu,
                "new_settled_storage": cost.storage,
                "new_settled_link": cost.link,
            }
            for request_id, cost in settled.items()
            if cost is not None
        ]
        voided = [
            {"guard_id": request_id, "new_updated_ns": now_ns}
            for request_id, cost in settled.items()
            if cost is None
        ]
        if charged:
            connection.execute(_CLOSE_CHARGED, charged)
        if voided:
            connection.execute(_CLOSE_VOIDED, voided)

    def set_reasons(
        self, updates: Sequence[tuple[str, str, tuple[Rejection, ...]]], now_ns: int
    ) -> None:
        """Why each pending request is still waiting (no transition: the state is unchanged)."""
        if not updates:
            return
        statement = (
            sa.update(REQUESTS)
            .where(REQUESTS.c.id == sa.bindparam("rid"))
            .where(REQUESTS.c.state == int(RequestState.PENDING))
            .values(
                reason=sa.bindparam("new_reason"),
                placement_reasons=sa.bindparam("new_reasons"),
                updated_ns=now_ns,
            )
        )
        with self._writing() as connection:
            connection.execute(
                statement,
                [
                    {
                        "rid": request_id,
                        "new_reason": _cut(reason),
                        "new_reasons": _reasons_json(reasons),
                    }
                    for request_id, reason, reasons in updates
                ],
            )

    # -- reads ---------------------------------------------------------------------------------

    def receipt(self, request_id: str) -> tuple[ReceiptFacts, int | None] | None:
        """The usage receipt the request ended by, and its entry in the signed log (None
        until settled, or when nothing was charged against it)."""
        query = (
            sa.select(
                RECEIPTS, REQUESTS.c.outcome, REQUESTS.c.result_digest, REQUESTS.c.result_bytes
            )
            .join(REQUESTS, REQUESTS.c.id == RECEIPTS.c.request_id)
            .where(RECEIPTS.c.request_id == request_id)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        facts = ReceiptFacts(
            digest=bytes(row.digest),
            envelope=bytes(row.envelope),
            node=row.node,
            node_public_key=bytes(row.node_public_key),
            key_entry_index=int(row.key_entry_index),
            outcome=int(row.outcome),
            result_digest=row.result_digest,
            result_bytes=int(row.result_bytes),
            received_ns=int(row.received_ns),
        )
        return facts, (int(row.entry_index) if row.entry_index is not None else None)

    def on_node(
        self, node: str, states: frozenset[RequestState], limit: int
    ) -> list[StoredRequest]:
        """Requests placed on `node` in `states`, by placement start (at most `limit`)."""
        query = (
            sa.select(REQUESTS)
            .where(REQUESTS.c.placed_node == node)
            .where(REQUESTS.c.state.in_([int(s) for s in states]))
            .order_by(REQUESTS.c.due_s, REQUESTS.c.id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_stored_of(row._mapping) for row in connection.execute(query)]

    def placed_uplinks(self, node: str, after_s: int, limit: int) -> list[PlacedUplink]:
        """The PLACED requests on `node` whose start is after `after_s`, by start (at most
        `limit`): what a ticket pull chooses by, read without decoding whole rows (a node
        polls often; its few due tickets are then read in full)."""
        # Through the driver's cursor: every PullTickets asks, and the statement built and
        # run by SQLAlchemy cost about 1 ms of the GIL per call, more than SQLite's work.
        found: list[PlacedUplink] = []
        with self._engine.connect() as connection:
            rows = driver_rows(
                connection,
                _PLACED_UPLINKS_SQL,
                (node, int(RequestState.PLACED), after_s, limit),
                limit,
            )
            for row in rows:
                request_id, sequence, text = row["id"], row["sequence"], row["placement"]
                if not text:
                    continue
                data = json.loads(text)
                up = data["uplink"]
                found.append(
                    PlacedUplink(
                        str(request_id), int(sequence), up["contact"], up["at"], data["start"]
                    )
                )
        return found

    def get(self, request_id: str) -> StoredRequest | None:
        with self._engine.connect() as connection:
            return self.get_on(connection, request_id)

    def get_on(self, connection: sa.Connection, request_id: str) -> StoredRequest | None:
        """`get` through `connection` (ReportReceipt: one read connection for its checks)."""
        row = driver_row(connection, "SELECT * FROM requests WHERE id = ?", (request_id,))
        return _stored_of(row) if row is not None else None

    def by_key(self, tenant: str, key: str) -> StoredRequest | None:
        # Through the driver's cursor, as `get_on`: every Submit asks (almost always to find
        # nothing), and a statement built and run by SQLAlchemy (with its BEGIN and ROLLBACK)
        # cost about 0.6 ms of the GIL per call.
        with self._engine.connect() as connection:
            row = driver_row(
                connection,
                "SELECT * FROM requests WHERE tenant = ? AND idempotency_key = ?",
                (tenant, key),
            )
        return _stored_of(row) if row is not None else None

    def fetch(self, request_ids: Sequence[str]) -> list[StoredRequest]:
        # Through the driver's cursor, as `get_on` (PullTickets reads the requests it makes
        # tickets for); by primary key, so at most one row per id.
        found: list[StoredRequest] = []
        with self._engine.connect() as connection:
            for first in range(0, len(request_ids), IN_LIST_VALUES_MAX):
                chunk = list(request_ids[first : first + IN_LIST_VALUES_MAX])
                rows = driver_rows(connection, _fetch_sql(len(chunk)), chunk, len(chunk))
                found.extend(_stored_of(row) for row in rows)
        return found

    def page(
        self,
        tenant: str | None,
        states: frozenset[RequestState],
        limit: int,
        after: tuple[int, str] | None,
    ) -> list[StoredRequest]:
        """Requests newest first (by submission, then id), after the position `after`."""
        query = sa.select(REQUESTS)
        if tenant is not None:
            query = query.where(REQUESTS.c.tenant == tenant)
        if states:
            query = query.where(REQUESTS.c.state.in_([int(s) for s in states]))
        if after is not None:
            submitted, request_id = after
            query = query.where(
                sa.or_(
                    REQUESTS.c.submitted_ns < submitted,
                    sa.and_(REQUESTS.c.submitted_ns == submitted, REQUESTS.c.id < request_id),
                )
            )
        query = query.order_by(REQUESTS.c.submitted_ns.desc(), REQUESTS.c.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            return [_stored_of(row._mapping) for row in connection.execute(query)]

    def all(self, page_rows: int = 10_000) -> Iterator[StoredRequest]:
        """Every request, newest first, read in pages (each on its own connection)."""
        after: tuple[int, str] | None = None
        while True:
            rows = self.page(None, frozenset(), page_rows, after)
            yield from rows
            if len(rows) < page_rows:
                return
            after = (rows[-1].submitted_ns, rows[-1].id)

    def transitions(self, request_id: str, after_sequence: int, limit: int) -> list[Transition]:
        query = (
            sa.select(TRANSITIONS)
            .where(TRANSITIONS.c.request_id == request_id)
            .where(TRANSITIONS.c.sequence > after_sequence)
            .order_by(TRANSITIONS.c.sequence)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_transition_of(row._mapping) for row in connection.execute(query)]

    def due(self, states: frozenset[RequestState], now_s: int, limit: int) -> list[StoredRequest]:
        """Requests in `states` that time has caught up with (due_s <= now_s), earliest first."""
        query = (
            sa.select(REQUESTS)
            .where(REQUESTS.c.state.in_([int(s) for s in states]))
            .where(REQUESTS.c.due_s <= now_s)
            .order_by(REQUESTS.c.due_s, REQUESTS.c.id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_stored_of(row._mapping) for row in connection.execute(query)]

    def in_states(
        self, states: frozenset[RequestState], limit: int | None = None
    ) -> list[StoredRequest]:
        """Requests in `states`, oldest first (at most `limit`, when given)."""
        query = (
            sa.select(REQUESTS)
            .where(REQUESTS.c.state.in_([int(s) for s in states]))
            .order_by(REQUESTS.c.submitted_ns, REQUESTS.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as connection:
            return [_stored_of(row._mapping) for row in connection.execute(query)]

    def ids_in(self, states: frozenset[RequestState], due_after: int | None = None) -> set[str]:
        """Ids of the requests in `states` (and due after `due_after`, when given)."""
        query = sa.select(REQUESTS.c.id).where(REQUESTS.c.state.in_([int(s) for s in states]))
        if due_after is not None:
            query = query.where(REQUESTS.c.due_s > due_after)
        with self._engine.connect() as connection:
            return {str(request_id) for (request_id,) in connection.execute(query)}

    def usage_since(self, since_ns: int) -> dict[str, Cost]:
        """Tokens each tenant settled for requests completed since `since_ns`."""
        query = (
            sa.select(
                REQUESTS.c.tenant,
                sa.func.sum(REQUESTS.c.settled_cpu),
                sa.func.sum(REQUESTS.c.settled_storage),
                sa.func.sum(REQUESTS.c.settled_link),
            )
            .where(REQUESTS.c.state == int(RequestState.COMPLETED))
            .where(REQUESTS.c.ended_ns >= since_ns)
            .group_by(REQUESTS.c.tenant)
        )
        with self._engine.connect() as connection:
            return {
                str(tenant): Cost(int(cpu or 0), int(storage or 0), int(link or 0))
                for tenant, cpu, storage, link in connection.execute(query)
            }


# -- one move ------------------------------------------------------------------------------------


def _chunks_by_request(moves: Sequence[Move], requests_max: int) -> list[list[int]]:
    """Indices of `moves` in chunks naming at most `requests_max` requests each, every move of
    a request in the chunk of its first, the moves' order kept within a chunk."""
    chunk_of: dict[str, int] = {}
    chunks: list[list[int]] = []
    named = 0
    for index, move in enumerate(moves):
        chunk = chunk_of.get(move.request_id)
        if chunk is None:
            if not chunks or named >= requests_max:
                chunks.append([])
                named = 0
            chunk = chunk_of[move.request_id] = len(chunks) - 1
            named += 1
        chunks[chunk].append(index)
    return chunks


def _apply_moves(
    connection: sa.Connection, moves: Sequence[Move], now_ns: int, receipt_grace: int | None
) -> list[StoredRequest | None]:
    """`apply_on`'s work with a constant number of statements per batch, not per move: one
    locking read of every row the moves name, then the updates (runs of moves that set the same
    columns share one executemany, in the moves' order), the transitions and the receipts.
    Statement construction, not the database, was most of a scheduling cycle's cost."""
    current_rows = _locked_rows(connection, sorted({move.request_id for move in moves}))
    results: list[StoredRequest | None] = []
    updates: list[_Update] = []
    transitions: list[dict[str, Any]] = []
    receipts: list[dict[str, Any]] = []
    for move in moves:
        current = current_rows.get(move.request_id)
        if current is None:
            results.append(None)
            continue
        state = RequestState(current["state"])
        if state not in move.expected or move.sequence not in (None, current["sequence"]):
            results.append(None)
            continue
        check(state, move.to)
        values = _move_values(move, current, now_ns, receipt_grace)
        if move.receipt is not None:
            receipts.append(_receipt_row(move.request_id, move.receipt))
        updates.append(_Update(move.request_id, current["sequence"], values))
        transitions.append(_move_row(move.request_id, state, move.to, values, now_ns))
        current.update(values)
        results.append(_stored_of(current))
    _update_in_runs(connection, updates)
    if transitions:
        connection.execute(sa.insert(TRANSITIONS), transitions)
    if receipts:
        connection.execute(sa.insert(RECEIPTS), receipts)
    return results


def _plan_receipt_end(
    request: StoredRequest, moves: Sequence[Move], now_ns: int, receipt_grace: int | None
) -> ReceiptEnd | None:
    """`plan_receipt_end`: `_apply_moves`' values for the request as read, the moves' columns
    merged into one UPDATE (the last move's value of each column wins, as applying them in
    order would leave it) and one transition row per move."""
    state, sequence = request.state, request.sequence
    values: dict[str, Any] = {}
    transitions: list[Mapping[str, Any]] = []
    receipt: Mapping[str, Any] | None = None
    for move in moves:
        assert move.request_id == request.id
        # Neither placing nor unplacing: the stored placement is the one `due_s` needs.
        assert move.to not in (RequestState.PLACED, RequestState.PENDING), move
        if state not in move.expected or move.sequence not in (None, sequence):
            return None
        check(state, move.to)
        step = _set_values(move, sequence, now_ns)
        step["due_s"] = due_s(
            move.to,
            request.spec.deadline,
            request.placement,
            request.reservation_open,
            receipt_grace,
        )
        if move.receipt is not None:
            receipt = _receipt_row(request.id, move.receipt)
        transitions.append(_move_row(request.id, state, move.to, step, now_ns))
        values.update(step)
        state, sequence = move.to, step["sequence"]
    assert receipt is not None
    assert state.terminal
    after = replace(
        request,
        state=state,
        sequence=sequence,
        reason=values["reason"],
        updated_ns=now_ns,
        ended_ns=values["ended_ns"],
        fault=Fault(values.get("fault", request.fault)),
        outcome=values["outcome"],
        receipt_digest=values["receipt_digest"],
        result_digest=values["result_digest"],
        result_bytes=values["result_bytes"],
        settled=(
            Cost(values["settled_cpu"], values["settled_storage"], values["settled_link"])
            if "settled_cpu" in values
            else request.settled
        ),
    )
    return ReceiptEnd(request, values, tuple(transitions), receipt, after)


def _locked_rows(connection: sa.Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The rows of `ids` (those that exist), locked until the transaction ends."""
    rows: dict[str, dict[str, Any]] = {}
    for first in range(0, len(ids), IN_LIST_VALUES_MAX):
        chunk = ids[first : first + IN_LIST_VALUES_MAX]
        query = sa.select(REQUESTS).where(REQUESTS.c.id.in_(chunk)).with_for_update()
        for row in connection.execute(query):
            rows[row.id] = dict(row._mapping)
    return rows


def _move_values(
    move: Move, current: Mapping[str, Any], now_ns: int, receipt_grace: int | None
) -> dict[str, Any]:
    """The columns `move` sets on a request now stored as `current`."""
    values = _set_values(move, current["sequence"], now_ns)
    placement_text = values.get("placement", current["placement"])
    placement, _ = _placement_of(placement_text, move.request_id) if placement_text else (None, ())
    spec = RequestSpec.from_json(current["spec"])
    values["due_s"] = due_s(
        move.to, spec.deadline, placement, current["reservation_open"], receipt_grace
    )
    return values


def _set_values(move: Move, sequence: int, now_ns: int) -> dict[str, Any]:
    """The columns `move` sets on a request at `sequence`, but `due_s` (which needs the
    request's placement, deadline and reservation)."""
    values: dict[str, Any] = {
        "state": int(move.to),
        "sequence": sequence + 1,
        "reason": _cut(move.reason),
        "updated_ns": now_ns,
    }
    if move.to is RequestState.PLACED:
        assert move.placement is not None
        values["placement"] = _placement_json(move.placement, move.contacts)
        values["placement_reasons"] = None
        values["placed_node"] = move.placement.node
    elif move.to is RequestState.PENDING:
        values["placement"] = None
        values["placed_node"] = None
    if move.fault is not Fault.NONE:
        values["fault"] = int(move.fault)
    if move.receipt is not None:
        receipt = move.receipt
        values.update(
            outcome=receipt.outcome,
            receipt_digest=receipt.digest,
            result_digest=receipt.result_digest,
            result_bytes=receipt.result_bytes,
        )
    if move.to is RequestState.UNSCHEDULABLE:
        values["placement_reasons"] = _reasons_json(move.reasons)
    if move.settled is not None:
        values.update(
            settled_cpu=move.settled.cpu,
            settled_storage=move.settled.storage,
            settled_link=move.settled.link,
        )
    if move.to.terminal:
        values["ended_ns"] = now_ns
    return values


def _receipt_row(request_id: str, receipt: ReceiptFacts) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "digest": receipt.digest,
        "envelope": receipt.envelope,
        "node": receipt.node,
        "node_public_key": receipt.node_public_key,
        "key_entry_index": receipt.key_entry_index,
        "received_ns": receipt.received_ns,
    }


class _Update(NamedTuple):
    request_id: str
    from_sequence: int
    values: dict[str, Any]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(sorted(self.values))


def _update_in_runs(connection: sa.Connection, updates: Sequence[_Update]) -> None:
    """Each update, in order, guarded by the sequence it was computed from; consecutive updates
    that set the same columns go as one executemany (a request moved twice in one batch stays
    in order: its second update follows its first)."""
    first = 0
    while first < len(updates):
        columns = updates[first].columns
        last = first + 1
        while last < len(updates) and updates[last].columns == columns:
            last += 1
        run = updates[first:last]
        params = [
            {
                **{f"new_{column}": update.values[column] for column in columns},
                "guard_id": update.request_id,
                "guard_sequence": update.from_sequence,
            }
            for update in run
        ]
        updated = connection.execute(_update_statement(columns), params)
        # Every row is locked by this transaction (FOR UPDATE, or SQLite's write lock), so
        # every guarded update matches; drivers that do not count executemany report -1.
        assert updated.rowcount in (-1, len(run)), "a locked request moved under its lock"
        first = last


@functools.lru_cache(maxsize=64)
def _update_statement(columns: tuple[str, ...]) -> sa.Update:
    """One UPDATE per set of columns, built once (bound names differ from the column names:
    SQLAlchemy reserves those for the SET clause)."""
    return (
        sa.update(REQUESTS)
        .where(REQUESTS.c.id == sa.bindparam("guard_id"))
        .where(REQUESTS.c.sequence == sa.bindparam("guard_sequence"))
        .values({column: sa.bindparam(f"new_{column}") for column in columns})
    )


# -- rows <-> values -----------------------------------------------------------------------------


def _cut(text: str) -> str:
    return text if len(text) <= REASON_CHARS_MAX else text[: REASON_CHARS_MAX - 3] + "..."


def _row_of(request: StoredRequest, receipt_grace: int | None) -> dict[str, Any]:
    return {
        "id": request.id,
        "tenant": request.tenant,
        "idempotency_key": request.idempotency_key,
        "spec": request.spec.to_json(),
        "state": int(request.state),
        "sequence": request.sequence,
        "reserved_cpu": request.reserved.cpu,
        "reserved_storage": request.reserved.storage,
        "reserved_link": request.reserved.link,
        "settled_cpu": request.settled.cpu,
        "settled_storage": request.settled.storage,
        "settled_link": request.settled.link,
        "reservation_open": request.reservation_open,
        "placement": (
            _placement_json(request.placement, request.contacts) if request.placement else None
        ),
        "reason": _cut(request.reason),
        "placement_reasons": _reasons_json(request.placement_reasons),
        "submitted_ns": request.submitted_ns,
        "updated_ns": request.updated_ns,
        "ended_ns": request.ended_ns,
        "due_s": due_s(
            request.state,
            request.spec.deadline,
            request.placement,
            request.reservation_open,
            receipt_grace,
        ),
        "placed_node": request.placement.node if request.placement else None,
        "fault": int(request.fault),
        "outcome": request.outcome,
        "receipt_digest": request.receipt_digest,
        "result_digest": request.result_digest,
        "result_bytes": request.result_bytes,
    }


def _stored_of(row: Mapping[Any, Any]) -> StoredRequest:
    placement, contacts = (
        _placement_of(row["placement"], row["id"]) if row["placement"] else (None, ())
    )
    return StoredRequest(
        id=row["id"],
        tenant=row["tenant"],
        idempotency_key=row["idempotency_key"],
        spec=RequestSpec.from_json(row["spec"]),
        state=RequestState(row["state"]),
        sequence=int(row["sequence"]),
        reserved=Cost(row["reserved_cpu"], row["reserved_storage"], row["reserved_link"]),
        settled=Cost(row["settled_cpu"], row["settled_storage"], row["settled_link"]),
        reservation_open=bool(row["reservation_open"]),
        placement=placement,
        contacts=contacts,
        reason=row["reason"],
        placement_reasons=_reasons_of(row["placement_reasons"]),
        submitted_ns=int(row["submitted_ns"]),
        updated_ns=int(row["updated_ns"]),
        ended_ns=int(row["ended_ns"]) if row["ended_ns"] is not None else None,
        fault=Fault(row["fault"]),
        outcome=int(row["outcome"]),
        receipt_digest=bytes(row["receipt_digest"]) if row["receipt_digest"] else None,
        result_digest=row["result_digest"],
        result_bytes=int(row["result_bytes"]),
    )


def _transition_row(transition: Transition) -> dict[str, Any]:
    return {
        "request_id": transition.request_id,
        "sequence": transition.sequence,
        "from_state": int(transition.from_state or 0),
        "to_state": int(transition.to_state),
        "at_ns": transition.at_ns,
        "reason": _cut(transition.reason),
    }


def _move_row(
    request_id: str,
    from_state: RequestState,
    to_state: RequestState,
    values: Mapping[str, Any],
    now_ns: int,
) -> dict[str, Any]:
    """The transition row of one move whose new columns are `values` (sequence, reason)."""
    return _transition_row(
        Transition(
            request_id=request_id,
            sequence=values["sequence"],
            from_state=from_state,
            to_state=to_state,
            at_ns=now_ns,
            reason=values["reason"],
        )
    )


def _transition_of(row: Mapping[Any, Any]) -> Transition:
    return Transition(
        request_id=row["request_id"],
        sequence=int(row["sequence"]),
        from_state=RequestState(row["from_state"]) if row["from_state"] else None,
        to_state=RequestState(row["to_state"]),
        at_ns=int(row["at_ns"]),
        reason=row["reason"],
    )


def _placement_json(placement: Placement, contacts: Sequence[Contact]) -> str:
    uplink = placement.uplink
    data = {
        "node": placement.node,
        "start": placement.start,
        "end": placement.end,
        "uplink": {
            "contact": uplink.contact,
            "station": uplink.station,
            "at": uplink.at,
            "end": uplink.end,
        },
        "downlink": [
            {"contact": s.contact, "station": s.station, "start": s.start, "end": s.end}
            for s in placement.downlink
        ],
        "contacts": [
            {"id": c.id, "node": c.node, "station": c.station, "start": c.start, "end": c.end}
            for c in contacts
        ],
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _placement_of(text: str, request_id: str) -> tuple[Placement, tuple[Contact, ...]]:
    data = json.loads(text)
    up = data["uplink"]
    placement = Placement(
        request=request_id,
        node=data["node"],
        start=data["start"],
        end=data["end"],
        uplink=Uplink(up["contact"], up["station"], up["at"], up["end"]),
        downlink=tuple(
            DownlinkSegment(s["contact"], s["station"], s["start"], s["end"])
            for s in data["downlink"]
        ),
    )
    contacts = tuple(
        Contact(c["id"], c["node"], c["station"], c["start"], c["end"]) for c in data["contacts"]
    )
    return placement, contacts


def _reasons_json(reasons: Sequence[Rejection]) -> str | None:
    if not reasons:
        return None
    return json.dumps(
        [{"plugin": r.plugin, "reason": r.reason, "nodes": r.nodes} for r in reasons],
        separators=(",", ":"),
    )


def _reasons_of(text: str | None) -> tuple[Rejection, ...]:
    if not text:
        return ()
    return tuple(Rejection(r["plugin"], r["reason"], int(r["nodes"])) for r in json.loads(text))
