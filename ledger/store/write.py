"""The ledger's write path: one durable transaction per group commit.

Owns: applying a group of work items in one transaction that locks the log head (serialising
writers, also across broker replicas on PostgreSQL), releases reservations past their timeout
first (A12), loads the accounts and pending transfers the group touches, runs the engine,
asserts the invariants on what the group changed (A13, below), and writes the log entries
(with their Merkle hashes), transfers, balances, pending statuses, evidence rows and the head,
and a service's rows attached to a successful item (CreateTransfers.attached) beside them.

Evidence (a node key, a usage receipt: E5) is appended at most once. The head lock makes the
lookup-then-append safe: a retry finds the existing entry (in the table, or earlier in the same
group) and gets its index back; a receipt given with its settling transfers gets its entry
before theirs.

Transfer ids are not looked up before a write: new ids are by far the common case, so the
group is written optimistically and the primary key is the arbiter. A duplicate (a client
retry) makes the insert fail; the group is then redone with every id loaded, which gives the
precise EXISTS / ID_ALREADY_FAILED results. Retries stay correct and the hot path saves a query.

A group whose PostgreSQL connection dies before its COMMIT is sent (a restarted server) was
rolled back by the server, and is written once more on a fresh connection: the pool checks no
connection with a round trip (orbitq.services.db.engine), so a connection may die between its
checkout and its use. One that dies during COMMIT is not retried here: whether the server
committed is unknown, and the caller's retry with the same transfer ids is what is safe
(EXISTS for what was committed).

Invariants are asserted in production, as TigerBeetle keeps its assertions on: before the
transaction commits, `check_group` (orbitq.ledger.invariants) verifies that the group's changes
to the accounts it touched keep, per kind, Σ debits = Σ credits (posted and pending), and that
no touched account has a negative balance field or, if it is a tenant's, a negative available
balance. A violation raises `InvariantViolationError` inside the transaction, so nothing of
the group is committed; it is a programmer error, and the writer halts on it.

Does not own: the rules (orbitq.ledger.engine), threading and queues
(orbitq.ledger.store.writer), the log's reads and checkpoints (orbitq.ledger.store.log), or the
SQL dialect (orbitq.ledger.store.dialect).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from orbitq.ledger import entries, merkle
from orbitq.ledger.engine import Engine, WorkingSet
from orbitq.ledger.entries import Evidence, ReceiptEvidence
from orbitq.ledger.gc_pause import collector_paused
from orbitq.ledger.invariants import check_group
from orbitq.ledger.model import (
    Account,
    Kind,
    PendingStatus,
    Result,
    StoredTransfer,
    SystemAccount,
    id_from_bytes,
    id_to_bytes,
)
from orbitq.ledger.store.dialect import (
    IN_LIST_VALUES_MAX,
    Dialect,
    is_unique_violation,
    placeholders,
)
from orbitq.ledger.store.evidence import EVIDENCE_COLUMNS, evidence_row, existing_index
from orbitq.ledger.store.log import LedgerLog
from orbitq.ledger.store.rows import (
    ACCOUNT_COLUMNS,
    TRANSFER_COLUMNS,
    Head,
    account_of,
    head_of,
    head_query,
    select_accounts,
    select_head,
    select_transfers,
    storable_account_ids,
)
from orbitq.ledger.store.transactions import write_transaction
from orbitq.ledger.store.work import (
    EXPIRE_BATCH_MAX,
    AccountSpec,
    AttachedRows,
    AttachedWrite,
    AttachedWriteError,
    CreateAccounts,
    CreateTransfers,
    EvidenceRecorded,
    ExpireDue,
    Outcomes,
    RecordEvidence,
    WorkItem,
    WorkResult,
)

# The engine a group runs through: orbitq.ledger.engine.Engine (tests pass a faulty subclass to
# prove that a broken invariant halts the writer).
Rules = Callable[[WorkingSet, int], Engine]

_NEVER = 2**63 - 1


@dataclass(frozen=True, slots=True)
class _Recorded:
    """A piece of evidence the group appends, with its ledger timestamp."""

    evidence: Evidence
    timestamp_ns: int


_Event = Account | StoredTransfer | _Recorded


@dataclass(frozen=True, slots=True)
class _Preloaded:
    """Accounts read with the head lock (`asked`: every id asked for, found or not)."""

    accounts: dict[int, Account] = field(default_factory=dict)
    asked: frozenset[int] = frozenset()


def _last_timestamp(events: Sequence[_Event], head: Head) -> int:
    """V20: the head keeps the newest entry's timestamp, so it is derived from the log. The
    engine may have taken later timestamps for transfers that left nothing (a linked chain
    rolled back, a failure not recorded); nothing stored carries them, so the next group may
    take them again and timestamps still strictly increase over the log (A6)."""
    if not events:
        return head.last_timestamp_ns
    last = events[-1]
    return last.transfer.timestamp_ns if isinstance(last, StoredTransfer) else last.timestamp_ns


@dataclass
class _Applied:
    """What one group did: results per item, log events in order, ids of failed transfers,
    and the evidence it appended (receipts by digest; node keys: the latest per node)."""

    start: int
    next_account_id: int
    events: list[_Event] = field(default_factory=list)
    results: list[WorkResult] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    receipts: dict[bytes, int] = field(default_factory=dict)
    node_keys: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    attached: list[AttachedWrite] = field(default_factory=list)


class _DuplicateIdError(Exception):
    """A transfer id assumed new already exists: redo the group with every id loaded."""


class _LostBeforeCommitError(Exception):
    """The group's connection died before its COMMIT was sent: nothing of it is stored."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _lost(driver: Any) -> bool:
    """Whether a PostgreSQL (psycopg) connection is gone: closed, or broken by a lost server.
    A SQLite connection has no server to lose."""
    return bool(getattr(driver, "closed", False) or getattr(driver, "broken", False))


class WritePath:
    """Group commits over one engine. Writes must come from one thread (the group-commit
    writer, or a tool or test calling directly).

    The engine must honour the `orbitq_write` execution option by starting an immediate
    (write-locking) transaction on SQLite (orbitq.services.db.engine does).
    """

    def __init__(
        self,
        engine: sa.Engine,
        dialect: Dialect,
        log: LedgerLog,
        *,
        append_entries: bool = True,
        assert_invariants: bool = True,
        rules: Rules = Engine,
    ) -> None:
        self._engine = engine
        self._dialect = dialect
        self._log = log
        self._append_entries = append_entries
        self._assert_invariants = assert_invariants
        self._rules = rules
        # What this writer knows as of its last commit, trusted only while the head still has
        # the size it left (else another replica wrote): when the next reservation expires
        # (None = unknown; _NEVER = no reservation with a timeout). The frontier is the log's.
        self._known_size: int | None = None
        self._next_expiry_ns: int | None = None

    def initialize(self, now_ns: int) -> None:
        """Create the head row and the system accounts if they are missing (idempotent)."""
        with write_transaction(self._engine) as conn:
            cursor = conn.connection.cursor()
            cursor.execute("SELECT size FROM ledger_head WHERE id = 1")
            if cursor.fetchone() is None:
                cursor.execute(
                    self._dialect.sql(
                        "INSERT INTO ledger_head (id, size, last_timestamp_ns, next_account_id)"
                        " VALUES (?, ?, ?, ?)"
                    ),
                    (1, 0, 0, 1),
                )
        specs = tuple(AccountSpec(kind, system=system) for system in SystemAccount for kind in Kind)
        self.write([CreateAccounts(specs)], now_ns)

    def write(self, items: Sequence[WorkItem], now_ns: int) -> list[WorkResult]:
        """Apply `items` in order in one durable transaction; one result per item."""
        with collector_paused():  # the group's objects die with it (gc_pause says why)
            try:
                return self._write_ids(items, now_ns)
            except _LostBeforeCommitError:
                # The connection died before COMMIT was sent (a restarted server), so the server
                # rolled the group back; the pool hands out a live connection now. Once only.
                try:
                    return self._write_ids(items, now_ns)
                except _LostBeforeCommitError as again:
                    raise again.error from None

    def _write_ids(self, items: Sequence[WorkItem], now_ns: int) -> list[WorkResult]:
        try:
            return self._write_once(items, now_ns, load_every_id=False)
        except _DuplicateIdError:
            return self._write_once(items, now_ns, load_every_id=True)

    def _write_once(
        self, items: Sequence[WorkItem], now_ns: int, *, load_every_id: bool
    ) -> list[WorkResult]:
        sql = self._dialect.sql
        driver: Any = None  # the DBAPI connection, to tell a lost one from other errors
        committing = False
        try:
            with write_transaction(self._engine) as conn:
                driver = conn.connection.dbapi_connection
                cursor = conn.connection.cursor()
                head, preloaded = self._lock_head(cursor, items)
                if head.size != self._known_size:
                    self._forget()
                frontier = self._log.frontier_for(cursor, head.size)
                # A12: reservations past their timeout are released before anything else, as
                # TigerBeetle expires before each batch (in memory we know when one is due).
                if self._next_expiry_ns is None:
                    self._next_expiry_ns = self._query_next_expiry(cursor)
                auto_expire = self._next_expiry_ns <= now_ns and not any(
                    isinstance(item, ExpireDue) for item in items
                )
                work: Sequence[WorkItem] = [ExpireDue(), *items] if auto_expire else items
                expiring = auto_expire or any(isinstance(item, ExpireDue) for item in items)
                due = self._due_pending_ids(cursor, now_ns) if expiring else []
                state = self._load_working_set(cursor, work, head, due, load_every_id, preloaded)
                # A13, incrementally: the touched accounts' balances before the group. Checking
                # its changes costs O(accounts touched); a SUM over all accounts per commit
                # would not (check_group says why the changes suffice).
                before = {account.id: account.balances() for account in state.accounts.values()}
                applied = self._apply(cursor, work, state, now_ns, head, due)
                if self._assert_invariants:
                    check_group(before, _touched(state))
                # A failed transfer is not inserted, so the primary key cannot reveal that its id
                # was already taken (a retry must get EXISTS, not a fresh verdict): ask.
                failed = applied.failed if not load_every_id else []
                if failed and select_transfers(cursor, self._dialect, failed):
                    raise _DuplicateIdError
                events, results = applied.events, applied.results
                size = self._append_log(cursor, frontier, head.size, events)
                self._write_transfers(cursor, events, head.size)
                # The rest of the group's writes read no results: on PostgreSQL they go in one
                # round trip (bench/ledger_postgres.py: round trips, not rows, bound the group).
                with self._dialect.pipeline(cursor):
                    self._write_evidence(cursor, events, head.size)
                    self._write_balances(cursor, state)
                    self._write_pending(cursor, state)
                    cursor.execute(
                        sql(
                            "UPDATE ledger_head SET size = ?, last_timestamp_ns = ?,"
                            " next_account_id = ? WHERE id = 1"
                        ),
                        (size, _last_timestamp(events, head), applied.next_account_id),
                    )
                try:
                    _write_attached(conn, applied.attached)
                except Exception as error:
                    raise AttachedWriteError(str(error)) from error
                next_expiry = None if expiring else self._next_expiry_ns
                for stored in state.created:
                    if next_expiry is not None and stored.expires_ns and stored.result is Result.OK:
                        next_expiry = min(next_expiry, stored.expires_ns)
                # Leaving the block sends COMMIT: a connection lost from here on leaves the
                # outcome unknown, so the error goes to the caller, whose retry the transfer ids
                # make safe (EXISTS), never retried here.
                committing = True
        except BaseException as error:
            # The in-memory state may hold changes that were rolled back.
            self._log.remember(None)
            self._forget()
            if not committing and _lost(driver):
                raise _LostBeforeCommitError(error) from error
            raise
        self._log.remember(frontier)
        self._known_size = size
        self._next_expiry_ns = next_expiry
        return results[1:] if auto_expire else results

    def _apply(
        self,
        cursor: Any,
        work: Sequence[WorkItem],
        state: WorkingSet,
        now_ns: int,
        head: Head,
        due: Sequence[int],
    ) -> _Applied:
        """Run every item through the engine, in order, collecting the log's events."""
        engine = self._rules(state, now_ns)
        applied = _Applied(start=head.size, next_account_id=head.next_account_id)
        for item in work:
            if isinstance(item, CreateAccounts):
                created, applied.next_account_id = self._create_accounts(
                    cursor, item.specs, engine, applied.next_account_id
                )
                applied.events.extend(account for account, is_new in created if is_new)
                applied.results.append([account for account, _ in created])
                continue
            if isinstance(item, RecordEvidence):
                applied.results.append([self._record(cursor, item.evidence, engine, applied)])
                continue
            mark = len(state.created)
            if isinstance(item, CreateTransfers):
                # E5: the evidence's entry comes first, then the transfers that settle against it.
                recorded = (
                    self._record(cursor, item.evidence, engine, applied)
                    if item.evidence is not None
                    else None
                )
                outcomes = engine.create_transfers(item.transfers)
                applied.failed.extend(item.transfers[o.index].id for o in outcomes if not o.ok)
                if item.attached is not None and all(outcome.ok for outcome in outcomes):
                    applied.attached.append(item.attached)
                applied.results.append(Outcomes(outcomes, recorded))
            else:
                applied.results.append(engine.expire(due))
            applied.events.extend(state.created[mark:])
        return applied

    def _record(
        self, cursor: Any, evidence: Evidence, engine: Engine, applied: _Applied
    ) -> EvidenceRecorded:
        """E5: append `evidence` unless the log already has it (then return its entry)."""
        if not self._append_entries:
            raise ValueError("evidence is recorded in the signed log: this store keeps no log")
        digest = evidence.digest()
        found: int | None
        if isinstance(evidence, ReceiptEvidence):
            found = applied.receipts.get(digest)
            if found is None:
                found = existing_index(cursor, self._dialect, evidence, digest)
        else:
            # The node's latest key as of this point of the group decides (E5).
            latest = applied.node_keys.get(evidence.node)
            if latest is None:
                found = existing_index(cursor, self._dialect, evidence, digest)
            else:
                found = latest[1] if latest[0] == digest else None
        if found is not None:
            return EvidenceRecorded(found, digest, new=False)
        index = applied.start + len(applied.events)
        applied.events.append(_Recorded(evidence, engine.next_timestamp()))
        if isinstance(evidence, ReceiptEvidence):
            applied.receipts[digest] = index
        else:
            applied.node_keys[evidence.node] = (digest, index)
        return EvidenceRecorded(index, digest, new=True)

    def _forget(self) -> None:
        self._known_size = None
        self._next_expiry_ns = None

    # -- loading -------------------------------------------------------------------------------

    def _query_next_expiry(self, cursor: Any) -> int:
        cursor.execute(
            self._dialect.sql(
                "SELECT MIN(expires_ns) FROM ledger_pending WHERE status = ? AND expires_ns > 0"
            ),
            (int(PendingStatus.PENDING),),
        )
        row = cursor.fetchone()
        return int(row[0]) if row is not None and row[0] is not None else _NEVER

    def _due_pending_ids(self, cursor: Any, now_ns: int) -> list[int]:
        cursor.execute(
            self._dialect.sql(
                "SELECT id FROM ledger_pending WHERE status = ? AND expires_ns > 0"
                " AND expires_ns <= ? ORDER BY expires_ns, id LIMIT ?"
            ),
            (int(PendingStatus.PENDING), now_ns, EXPIRE_BATCH_MAX),
        )
        return [id_from_bytes(bytes(row[0])) for row in cursor.fetchall()]

    def _lock_head(self, cursor: Any, items: Sequence[WorkItem]) -> tuple[Head, _Preloaded]:
        """The head row, locked; on PostgreSQL, in the same round trip, the accounts the items'
        transfers name. Safe: a pipeline's statements run one after another, each (READ
        COMMITTED) with its own snapshot, so the accounts are read once the lock is held and
        see everything the previous holder committed. (One statement reading both would not:
        its snapshot predates the wait for the lock.)"""
        ids = storable_account_ids(
            {
                account_id
                for item in items
                if isinstance(item, CreateTransfers)
                for transfer in item.transfers
                for account_id in (transfer.debit_account_id, transfer.credit_account_id)
            }
        )
        if not self._dialect.postgres or not 0 < len(ids) <= IN_LIST_VALUES_MAX:
            return select_head(cursor, self._dialect, lock=True), _Preloaded()
        accounts_cursor = cursor.connection.cursor()
        with self._dialect.pipeline(cursor):
            cursor.execute(head_query(self._dialect, lock=True))
            accounts_cursor.execute(
                self._dialect.sql(
                    f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts"
                    f" WHERE id IN ({placeholders(len(ids))})"
                ),
                ids,
            )
            head = head_of(cursor.fetchone())
            rows = accounts_cursor.fetchall()
        accounts = [account_of(row) for row in rows]
        return head, _Preloaded({account.id: account for account in accounts}, frozenset(ids))

    def _load_working_set(
        self,
        cursor: Any,
        items: Sequence[WorkItem],
        head: Head,
        due: Sequence[int],
        load_every_id: bool,
        preloaded: _Preloaded,
    ) -> WorkingSet:
        account_ids: set[int] = set()
        transfer_ids: set[int] = set(due)
        for item in items:
            if isinstance(item, CreateTransfers):
                for transfer in item.transfers:
                    account_ids.add(transfer.debit_account_id)
                    account_ids.add(transfer.credit_account_id)
                    if transfer.pending_id:
                        transfer_ids.add(transfer.pending_id)
                    if load_every_id:
                        transfer_ids.add(transfer.id)
        transfers = {
            stored.transfer.id: stored
            for stored in select_transfers(cursor, self._dialect, transfer_ids)
        }
        for stored in transfers.values():
            account_ids.add(stored.transfer.debit_account_id)
            account_ids.add(stored.transfer.credit_account_id)
        pending_ids = [t_id for t_id, stored in transfers.items() if stored.transfer.is_pending]
        accounts = dict(preloaded.accounts)
        missing = account_ids - preloaded.asked
        accounts.update(
            (account.id, account) for account in select_accounts(cursor, self._dialect, missing)
        )
        return WorkingSet(
            accounts=accounts,
            transfers=transfers,
            pending_status=self._select_pending_status(cursor, pending_ids),
            last_timestamp_ns=head.last_timestamp_ns,
        )

    def _select_pending_status(self, cursor: Any, ids: Iterable[int]) -> dict[int, PendingStatus]:
        rows = self._dialect.select_in(
            cursor,
            "SELECT id, status FROM ledger_pending WHERE id",
            [id_to_bytes(t_id) for t_id in ids],
        )
        return {id_from_bytes(bytes(raw_id)): PendingStatus(status) for raw_id, status in rows}

    # -- accounts ------------------------------------------------------------------------------

    def _create_accounts(
        self, cursor: Any, specs: Sequence[AccountSpec], engine: Engine, next_id: int
    ) -> tuple[list[tuple[Account, bool]], int]:
        created: list[tuple[Account, bool]] = []
        insert = self._dialect.sql(
            f"INSERT INTO ledger_accounts ({ACCOUNT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0)"
        )
        for spec in specs:
            existing = self._find_account(cursor, spec)
            if existing is not None:
                created.append((existing, False))
                continue
            account = Account(
                id=next_id,
                kind=spec.kind,
                tenant=spec.tenant,
                system=spec.system,
                flags=int(spec.flags),
                timestamp_ns=engine.next_timestamp(),
            )
            cursor.execute(
                insert,
                (
                    account.id,
                    int(account.kind),
                    account.tenant,
                    int(account.system) if account.system else None,
                    account.flags,
                    account.timestamp_ns,
                ),
            )
            created.append((account, True))
            next_id += 1
        return created, next_id

    def _find_account(self, cursor: Any, spec: AccountSpec) -> Account | None:
        owner: str | int
        if spec.tenant is not None:
            owner_column, owner = "tenant", spec.tenant
        else:
            assert spec.system is not None
            owner_column, owner = "system", int(spec.system)
        cursor.execute(
            self._dialect.sql(
                f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts"
                f" WHERE {owner_column} = ? AND kind = ?"
            ),
            (owner, int(spec.kind)),
        )
        row = cursor.fetchone()
        return account_of(row) if row is not None else None

    # -- writing -------------------------------------------------------------------------------

    def _append_log(
        self,
        cursor: Any,
        frontier: merkle.Frontier,
        start: int,
        events: Sequence[_Event],
    ) -> int:
        """L1-L3: one leaf per event, in commit order, hashed into the frontier."""
        if not self._append_entries:
            return start
        # The append path's hot spot (see bench/ledger_verify.py): encode every entry, then
        # hash them all into the frontier in one tight loop (Frontier.append_entries).
        encode_transfer = entries.encode_transfer_recorded
        datas = [
            encode_transfer(index, event)
            if type(event) is StoredTransfer
            else _encode_other(index, event)
            for index, event in enumerate(events, start)
        ]
        stored = frontier.append_entries(datas)
        end = start + len(datas)
        assert frontier.size == end
        if datas:
            self._dialect.insert_rows(
                cursor,
                "ledger_entries",
                "idx, data, hashes",
                zip(range(start, end), datas, stored, strict=True),
            )
        return end

    def _write_transfers(self, cursor: Any, events: Sequence[_Event], start: int) -> None:
        rows = []
        for offset, event in enumerate(events):
            if not isinstance(event, StoredTransfer):
                continue
            t = event.transfer
            rows.append(
                (
                    t.id.to_bytes(16, "big"),
                    t.debit_account_id,
                    t.credit_account_id,
                    t.amount,
                    t.pending_id.to_bytes(16, "big") if t.pending_id else None,
                    t.user_data or None,
                    t.kind,
                    t.code,
                    t.flags,
                    t.timeout_seconds,
                    t.timestamp_ns,
                    int(event.result),
                    event.released,
                    start + offset if self._append_entries else None,
                )
            )
        if not rows:
            return
        try:
            self._dialect.insert_rows(cursor, "ledger_transfers", TRANSFER_COLUMNS, rows)
        except Exception as error:
            if is_unique_violation(error):
                raise _DuplicateIdError from error
            raise

    def _write_evidence(self, cursor: Any, events: Sequence[_Event], start: int) -> None:
        """E5: a `ledger_evidence` row per evidence entry the group appended."""
        rows = [
            evidence_row(start + offset, event.evidence)
            for offset, event in enumerate(events)
            if isinstance(event, _Recorded)
        ]
        if rows:
            cursor.executemany(
                self._dialect.sql(
                    f"INSERT INTO ledger_evidence ({EVIDENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                ),
                rows,
            )

    def _write_balances(self, cursor: Any, state: WorkingSet) -> None:
        rows = [
            (
                account.debits_pending,
                account.debits_posted,
                account.credits_pending,
                account.credits_posted,
                account.id,
            )
            for account in _touched(state)
        ]
        if rows:
            cursor.executemany(
                self._dialect.sql(
                    "UPDATE ledger_accounts SET debits_pending = ?, debits_posted = ?,"
                    " credits_pending = ?, credits_posted = ? WHERE id = ?"
                ),
                rows,
            )

    def _write_pending(self, cursor: Any, state: WorkingSet) -> None:
        inserts = []
        updates = []
        created_now = {stored.transfer.id for stored in state.created}
        for pending_id, status in state.pending_changes.items():
            stored = state.transfers[pending_id]
            if pending_id in created_now:
                inserts.append((id_to_bytes(pending_id), int(status), stored.expires_ns))
            else:
                updates.append((int(status), id_to_bytes(pending_id)))
        sql = self._dialect.sql
        if inserts:
            cursor.executemany(
                sql("INSERT INTO ledger_pending (id, status, expires_ns) VALUES (?, ?, ?)"),
                inserts,
            )
        if updates:
            cursor.executemany(sql("UPDATE ledger_pending SET status = ? WHERE id = ?"), updates)


def _encode_other(index: int, event: _Event) -> bytes:
    if isinstance(event, Account):
        return entries.encode_account_created(index, event)
    assert isinstance(event, _Recorded)
    return entries.encode_evidence(index, event.timestamp_ns, event.evidence)


def _touched(state: WorkingSet) -> list[Account]:
    """The accounts whose balances the group may have changed: exactly those it writes back."""
    accounts = state.accounts
    return [accounts[i] for i in state.touched_accounts if i in accounts]


def _write_attached(conn: sa.Connection, attached: Sequence[AttachedWrite]) -> None:
    """The group's attached writes in item order; a run of AttachedRows is inserted as one
    executemany per table (the tables in the order the run first names them)."""
    pending: dict[sa.Table, list[Mapping[str, object]]] = {}

    def flush() -> None:
        for table, rows in pending.items():
            conn.execute(table.insert(), rows)
        pending.clear()

    for write in attached:
        if isinstance(write, AttachedRows):
            for table, rows in write.inserts:
                pending.setdefault(table, []).extend(rows)
        else:
            flush()
            write(conn)
    flush()
