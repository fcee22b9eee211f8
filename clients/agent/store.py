"""The agent's durable local store: `agent.db` in its data directory (stdlib sqlite3, WAL,
synchronous=FULL: a transaction that returned survives a power cut).

Owns the tables and every write to them, each change one transaction:
- tickets: the envelope exactly as pulled (its claims are read from it again), its digest, and
  its state:
  accepted → running → ran (run recorded; result waiting for its downlink) → done (receipt
  signed) or refused;
- runs: when a run started (without an end: the agent stopped mid-run) and how it ended;
- outbox: signed receipts until the broker acknowledges them;
- refusals: tickets refused onboard, until a heartbeat acknowledges them;
- downlinks: how far each result's downlink got (the broker's next_offset);
- contacts: the node's next contact windows, as the broker last said;
- blobs: modules and inputs fetched, by digest, and how much of each has arrived.

Everything is bounded: tickets (TICKETS_MAX, pruned after expiry), refusals (REFUSALS_MAX, the
oldest dropped), contacts (CONTACTS_MAX), blobs (evicted when no live ticket names them).

Does not own: what the rows mean for the loop (orbitq.clients.agent.agent) or the files of
runs and blobs (the agent's data directory, orbitq.clients.agent.datadir).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TICKETS_MAX = 10_000
REFUSALS_MAX = 1_000
CONTACTS_MAX = 64
# How long a finished ticket is kept after its expiry (replays of it are refused as expired).
TICKET_RETENTION_SECONDS = 86_400

TICKET_STATES = ("accepted", "running", "ran", "done", "refused")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    request_id TEXT PRIMARY KEY,
    envelope BLOB NOT NULL,
    digest BLOB NOT NULL,
    state TEXT NOT NULL,
    start INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_state ON tickets (state, start);
CREATE TABLE IF NOT EXISTS runs (
    request_id TEXT PRIMARY KEY,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    outcome INTEGER,
    exit_code INTEGER,
    fuel INTEGER,
    result_sha256 BLOB,
    result_bytes INTEGER,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    request_id TEXT PRIMARY KEY,
    receipt BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    refusals INTEGER NOT NULL DEFAULT 0,
    last_refusal TEXT
);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    ticket_digest BLOB NOT NULL,
    reason INTEGER NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS downlinks (
    request_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    next_offset INTEGER NOT NULL,
    completed_at INTEGER
);
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY,
    station TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    received INTEGER NOT NULL,
    verified INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class TicketRow:
    request_id: str
    envelope: bytes
    digest: bytes
    state: str
    start: int
    expires: int


@dataclass(frozen=True)
class RunRow:
    request_id: str
    attempt: int
    started_at: int
    ended_at: int | None
    outcome: int | None
    exit_code: int | None
    fuel: int | None
    result_sha256: bytes | None
    result_bytes: int | None
    detail: str | None


@dataclass(frozen=True)
class RefusalRow:
    id: int
    request_id: str
    ticket_digest: bytes
    reason: int
    detail: str
    at: int


@dataclass(frozen=True)
class DownlinkRow:
    request_id: str
    size: int
    sha256: bytes
    next_offset: int
    completed_at: int | None


@dataclass(frozen=True)
class ContactRow:
    id: str
    station: str
    start: int
    end: int


class AgentStore:
    """One connection, used by one thread (the agent's loop)."""

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        """`durable` False (the simulator's agents, whose store dies with the run) skips the
        fsync of each commit; an agent on a node keeps the default."""
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- tickets ---------------------------------------------------------------------------

    def count_tickets(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM tickets").fetchone()
        return int(count)

    def put_ticket(self, row: TicketRow, received_at: int) -> None:
        """Store an accepted ticket, replacing the row of its request id (a refused ticket, or
        an accepted one the caller found superseded)."""
        assert row.state == "accepted"
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO tickets (request_id, envelope, digest, state, start,"
                " expires, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    row.request_id,
                    row.envelope,
                    row.digest,
                    row.state,
                    row.start,
                    row.expires,
                    received_at,
                ),
            )

    def ticket(self, request_id: str) -> TicketRow | None:
        found = self._db.execute(
            f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE request_id = ?",  # noqa: S608
            (request_id,),
        ).fetchone()
        return None if found is None else TicketRow(*found)

    def tickets(self, state: str, *, limit: int = TICKETS_MAX) -> list[TicketRow]:
        """Tickets in `state`, earliest start first."""
        assert state in TICKET_STATES
        rows = self._db.execute(
            f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE state = ?"  # noqa: S608
            " ORDER BY start, request_id LIMIT ?",
            (state, limit),
        )
        return [TicketRow(*row) for row in rows]

    def set_state(self, request_id: str, state: str) -> None:
        assert state in TICKET_STATES
        with self._transaction() as db:
            db.execute("UPDATE tickets SET state = ? WHERE request_id = ?", (state, request_id))

    # --- runs ------------------------------------------------------------------------------

    def start_run(self, request_id: str, started_at: int) -> int:
        """Mark the ticket running and record the start (before the guest runs); returns the
        attempt number (1, then 2 after a crash mid-run, ...)."""
        with self._transaction() as db:
            previous = db.execute(
                "SELECT attempt FROM runs WHERE request_id = ?", (request_id,)
            ).fetchone()
            attempt = 1 if previous is None else int(previous[0]) + 1
            db.execute(
                "INSERT OR REPLACE INTO runs (request_id, attempt, started_at) VALUES (?, ?, ?)",
                (request_id, attempt, started_at),
            )
            db.execute("UPDATE tickets SET state = 'running' WHERE request_id = ?", (request_id,))
            return attempt

    def end_run(self, run: RunRow, downlink: DownlinkRow | None) -> None:
        """Record how the run ended and, when its result goes down, the downlink to do, with
        the ticket now `ran`: one transaction, so a crash leaves either nothing or all."""
        assert run.ended_at is not None
        assert run.outcome is not None
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET ended_at = ?, outcome = ?, exit_code = ?, fuel = ?,"
                " result_sha256 = ?, result_bytes = ?, detail = ? WHERE request_id = ?",
                (
                    run.ended_at,
                    run.outcome,
                    run.exit_code,
                    run.fuel,
                    run.result_sha256,
                    run.result_bytes,
                    run.detail,
                    run.request_id,
                ),
            )
            if downlink is not None:
                db.execute(
                    "INSERT OR REPLACE INTO downlinks (request_id, size, sha256, next_offset,"
                    " completed_at) VALUES (?, ?, ?, 0, NULL)",
                    (downlink.request_id, downlink.size, downlink.sha256),
                )
            db.execute("UPDATE tickets SET state = 'ran' WHERE request_id = ?", (run.request_id,))

    def run(self, request_id: str) -> RunRow | None:
        found = self._db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE request_id = ?",  # noqa: S608
            (request_id,),
        ).fetchone()
        return None if found is None else RunRow(*found)

    # --- outbox ----------------------------------------------------------------------------

    def put_receipt(self, request_id: str, receipt: bytes, created_at: int) -> None:
        """The signed receipt into the outbox, the ticket done: one transaction."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO outbox (request_id, receipt, created_at) VALUES (?, ?, ?)",
                (request_id, receipt, created_at),
            )
            db.execute("UPDATE tickets SET state = 'done' WHERE request_id = ?", (request_id,))

    def outbox(self, *, limit: int = TICKETS_MAX) -> list[tuple[str, bytes]]:
        rows = self._db.execute(
            "SELECT request_id, receipt FROM outbox ORDER BY created_at, request_id LIMIT ?",
            (limit,),
        )
        return [(str(request_id), bytes(receipt)) for request_id, receipt in rows]

    def receipt(self, request_id: str) -> bytes | None:
        found = self._db.execute(
            "SELECT receipt FROM outbox WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if found is None else bytes(found[0])

    def refuse_receipt(self, request_id: str, detail: str) -> int:
        """Count a refusal of an outbox receipt by the broker; returns the count so far."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET refusals = refusals + 1, last_refusal = ? WHERE request_id = ?",
                (detail[:500], request_id),
            )
            found = db.execute(
                "SELECT refusals FROM outbox WHERE request_id = ?", (request_id,)
            ).fetchone()
            return 0 if found is None else int(found[0])

    def acknowledge_receipt(self, request_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM outbox WHERE request_id = ?", (request_id,))

    # --- refusals --------------------------------------------------------------------------

    def refuse(self, refusal: RefusalRow, *, accepted: bool) -> None:
        """Record a refusal; with `accepted`, the request's accepted ticket is refused too (a
        blob that never arrived). The oldest refusals beyond REFUSALS_MAX are dropped."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO refusals (request_id, ticket_digest, reason, detail, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    refusal.request_id,
                    refusal.ticket_digest,
                    refusal.reason,
                    refusal.detail[:500],
                    refusal.at,
                ),
            )
            db.execute(
                "DELETE FROM refusals WHERE id NOT IN"
                " (SELECT id FROM refusals ORDER BY id DESC LIMIT ?)",
                (REFUSALS_MAX,),
            )
            if accepted:
                db.execute(
                    "UPDATE tickets SET state = 'refused' WHERE request_id = ?"
                    " AND state = 'accepted'",
                    (refusal.request_id,),
                )

    def is_refused(self, ticket_digest: bytes) -> bool:
        """Whether a refusal of this envelope waits for a heartbeat (a re-pull adds none)."""
        found = self._db.execute(
            "SELECT 1 FROM refusals WHERE ticket_digest = ? LIMIT 1", (ticket_digest,)
        ).fetchone()
        return found is not None

    def refusals(self, *, limit: int) -> list[RefusalRow]:
        rows = self._db.execute(
            "SELECT id, request_id, ticket_digest, reason, detail, at FROM refusals"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
        return [RefusalRow(*row) for row in rows]

    def acknowledge_refusals(self, through_id: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM refusals WHERE id <= ?", (through_id,))

    # --- downlinks -------------------------------------------------------------------------

    def downlink(self, request_id: str) -> DownlinkRow | None:
        found = self._db.execute(
            "SELECT request_id, size, sha256, next_offset, completed_at FROM downlinks"
            " WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if found is None else DownlinkRow(*found)

    def advance_downlink(self, request_id: str, next_offset: int, completed_at: int | None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE downlinks SET next_offset = ?, completed_at = ? WHERE request_id = ?",
                (next_offset, completed_at, request_id),
            )

    # --- contacts --------------------------------------------------------------------------

    def replace_contacts(self, contacts: list[ContactRow]) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM contacts")
            db.executemany(
                "INSERT OR REPLACE INTO contacts (id, station, start, end) VALUES (?, ?, ?, ?)",
                [(c.id, c.station, c.start, c.end) for c in contacts[:CONTACTS_MAX]],
            )

    def contacts(self, *, ending_after: int) -> list[ContactRow]:
        """Contacts that end after the instant, earliest first."""
        rows = self._db.execute(
            "SELECT id, station, start, end FROM contacts WHERE end > ? ORDER BY start LIMIT ?",
            (ending_after, CONTACTS_MAX),
        )
        return [ContactRow(*row) for row in rows]

    # --- blobs -----------------------------------------------------------------------------

    def blob(self, digest: str) -> tuple[int, int, bool] | None:
        """(size, bytes received, verified) of a blob, None when never started."""
        found = self._db.execute(
            "SELECT size, received, verified FROM blobs WHERE digest = ?", (digest,)
        ).fetchone()
        return None if found is None else (int(found[0]), int(found[1]), bool(found[2]))

    def record_blob(self, digest: str, size: int, received: int, verified: bool) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO blobs (digest, size, received, verified)"
                " VALUES (?, ?, ?, ?)",
                (digest, size, received, int(verified)),
            )

    def forget_blob(self, digest: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM blobs WHERE digest = ?", (digest,))

    def blobs(self) -> list[str]:
        rows = self._db.execute("SELECT digest FROM blobs LIMIT ?", (TICKETS_MAX,))
        return [str(row[0]) for row in rows]

    # --- pruning ---------------------------------------------------------------------------

    def prune(self, now: int) -> list[str]:
        """Forget finished tickets (done and acknowledged, or refused) past their expiry plus
        the retention; returns their request ids (their run directories go too)."""
        cutoff = now - TICKET_RETENTION_SECONDS
        with self._transaction() as db:
            gone = [
                str(row[0])
                for row in db.execute(
                    "SELECT request_id FROM tickets WHERE expires < ? AND (state = 'refused'"
                    " OR (state = 'done' AND request_id NOT IN (SELECT request_id FROM outbox)))"
                    " LIMIT ?",
                    (cutoff, TICKETS_MAX),
                )
            ]
            for table in ("tickets", "runs", "downlinks"):
                db.executemany(
                    f"DELETE FROM {table} WHERE request_id = ?",  # noqa: S608  (constant names)
                    [(request_id,) for request_id in gone],
                )
        return gone


_TICKET_COLUMNS = "request_id, envelope, digest, state, start, expires"
_RUN_COLUMNS = (
    "request_id, attempt, started_at, ended_at, outcome, exit_code, fuel, result_sha256,"
    " result_bytes, detail"
)
