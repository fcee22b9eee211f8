"""The ledger's only I/O: loading what a batch touches, applying it, appending the signed log.

Owns: the SQL of the ledger on SQLite and PostgreSQL — one transaction per group commit that
locks the log head (serialising writers, also across broker replicas on PostgreSQL), loads the
accounts and pending transfers the group touches, runs the engine, and writes transfers,
balances, pending statuses, log entries (with their Merkle hashes) and the head. Also the
read queries: accounts, history, balances at a past instant, entries and checkpoints.

Transfer ids are not looked up before a write: new ids are by far the common case, so the
group is written optimistically and the primary key is the arbiter. A duplicate (a client
retry) makes the insert fail; the group is then redone with every id loaded, which gives the
precise EXISTS / ID_ALREADY_FAILED results. Retries stay correct and the hot path saves a query.

Does not own: the rules (orbitq.ledger.engine), threading and queues (orbitq.ledger.writer),
or signing keys (passed in as a `Signer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orbitq.ledger import entries, merkle
from orbitq.ledger.checkpoint import Checkpoint, parse_checkpoint_body, sign_checkpoint
from orbitq.ledger.engine import Engine, WorkingSet
from orbitq.ledger.errors import (
    AccountIntegrityError,
    CheckpointIntegrityError,
    InvariantViolationError,
)
from orbitq.ledger.invariants import check_balances, check_replay, effect_of
from orbitq.ledger.model import (
    Account,
    AccountFlag,
    Kind,
    Outcome,
    PendingStatus,
    Result,
    StoredTransfer,
    SystemAccount,
    Transfer,
    id_from_bytes,
    id_to_bytes,
)
from orbitq.ledger.note import Signer
from orbitq.ledger.tables import (
    AccountRow,
    TransferRow,
)
from orbitq.ledger.transactions import write_transaction

# Bound on the ids of one IN (...) list: far below SQLite's and PostgreSQL's parameter limits.
_IN_LIST_MAX = 500
# Bound on the pending transfers one expiry pass releases; the next pass takes the rest.
EXPIRE_BATCH_MAX = 8190
# Bound on the accounts the writer keeps in memory between commits.
ACCOUNT_CACHE_MAX = 100_000
_NEVER = 2**63 - 1

_ACCOUNT_COLUMNS = (
    "id, kind, tenant, system, flags, timestamp_ns,"
    " debits_pending, debits_posted, credits_pending, credits_posted"
)
_TRANSFER_COLUMNS = (
    "id, debit_account_id, credit_account_id, amount, pending_id, user_data, kind, code,"
    " flags, timeout_seconds, timestamp_ns, result, released, entry_index"
)


# -- work items --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """An account to create: per (tenant, kind) or (system, kind), idempotently."""

    kind: Kind
    tenant: str | None = None
    system: SystemAccount | None = None

    @property
    def flags(self) -> int:
        # A3: tenant accounts may never spend more than they hold; the treasury may go negative.
        return AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS if self.tenant is not None else 0


@dataclass(frozen=True, slots=True)
class CreateTransfers:
    transfers: tuple[Transfer, ...]


@dataclass(frozen=True, slots=True)
class CreateAccounts:
    specs: tuple[AccountSpec, ...]


@dataclass(frozen=True, slots=True)
class ExpireDue:
    """Release every pending transfer whose timeout has passed by `now_ns`."""


WorkItem = CreateTransfers | CreateAccounts | ExpireDue
WorkResult = list[Outcome] | list[Account]


def work_weight(item: WorkItem) -> int:
    """How much an item counts against a group's size limit."""
    if isinstance(item, CreateTransfers):
        return max(1, len(item.transfers))
    if isinstance(item, CreateAccounts):
        return max(1, len(item.specs))
    return EXPIRE_BATCH_MAX


@dataclass(frozen=True, slots=True)
class Head:
    size: int
    last_timestamp_ns: int
    next_account_id: int


@dataclass
class _Applied:
    """What one group did: results per item, log events in order, ids of failed transfers."""

    next_account_id: int
    events: list[Account | StoredTransfer] = field(default_factory=list)
    results: list[WorkResult] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


class _DuplicateIdError(Exception):
    """A transfer id assumed new already exists: redo the group with every id loaded."""


# -- the store ---------------------------------------------------------------------------------


class LedgerStore:
    """Ledger persistence over one SQLAlchemy engine (SQLite or PostgreSQL).

    Writes must come from one thread (the group-commit writer); reads from any thread.
    The engine must honour the `orbitq_write` execution option by starting an immediate
    (write-locking) transaction on SQLite (orbitq.services.db.engine does).
    """

    def __init__(self, engine: sa.Engine, *, log: bool = True) -> None:
        self._engine = engine
        self._log = log
        self._pg = engine.dialect.name == "postgresql"
        # Compact range of the log as of the last commit; None = load on next write.
        self._frontier: merkle.Frontier | None = None
        # What this writer knows as of its last commit, trusted only while the head still has
        # the size it left (else another replica wrote): account balances, and when the next
        # reservation expires (None = unknown; _NEVER = no reservation with a timeout).
        self._known_size: int | None = None
        self._accounts_cache: dict[int, Account] = {}
        self._next_expiry_ns: int | None = None

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    # -- writing -------------------------------------------------------------------------------

    def initialize(self, now_ns: int) -> None:
        """Create the head row and the system accounts if they are missing (idempotent)."""
        with write_transaction(self._engine) as conn:
            row = conn.exec_driver_sql("SELECT size FROM ledger_head WHERE id = 1").first()
            if row is None:
                conn.exec_driver_sql(
                    "INSERT INTO ledger_head (id, size, last_timestamp_ns, next_account_id)"
                    f" VALUES ({self._p}, {self._p}, {self._p}, {self._p})",
                    (1, 0, 0, 1),
                )
        specs = tuple(AccountSpec(kind, system=system) for system in SystemAccount for kind in Kind)
        self.write([CreateAccounts(specs)], now_ns)

    def write(self, items: Sequence[WorkItem], now_ns: int) -> list[WorkResult]:
        """Apply `items` in order in one durable transaction; one result per item."""
        try:
            return self._write_once(items, now_ns, load_every_id=False)
        except _DuplicateIdError:
            return self._write_once(items, now_ns, load_every_id=True)

    def create_accounts(self, specs: Sequence[AccountSpec], now_ns: int) -> list[Account]:
        """One CreateAccounts item in its own transaction (tools and tests; the broker goes
        through the group-commit writer)."""
        (result,) = self.write([CreateAccounts(tuple(specs))], now_ns)
        return [account for account in result if isinstance(account, Account)]

    def create_transfers(self, transfers: Sequence[Transfer], now_ns: int) -> list[Outcome]:
        """One CreateTransfers item in its own transaction (see create_accounts)."""
        (result,) = self.write([CreateTransfers(tuple(transfers))], now_ns)
        return [outcome for outcome in result if isinstance(outcome, Outcome)]

    def expire_due(self, now_ns: int) -> list[Outcome]:
        """Release the pending transfers due by `now_ns` in their own transaction."""
        (result,) = self.write([ExpireDue()], now_ns)
        return [outcome for outcome in result if isinstance(outcome, Outcome)]

    def _write_once(
        self, items: Sequence[WorkItem], now_ns: int, *, load_every_id: bool
    ) -> list[WorkResult]:
        try:
            with write_transaction(self._engine) as conn:
                cursor = conn.connection.cursor()
                head = self._lock_head(cursor)
                if head.size != self._known_size:
                    self._forget()
                frontier = self._frontier_for(cursor, head.size)
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
                state = self._load_working_set(cursor, work, head, due, load_every_id)
                applied = self._apply(cursor, work, state, now_ns, head, due)
                # A failed transfer is not inserted, so the primary key cannot reveal that its id
                # was already taken (a retry must get EXISTS, not a fresh verdict): ask.
                failed = applied.failed if not load_every_id else []
                if failed and self._select_transfers(cursor, failed):
                    raise _DuplicateIdError
                events, results = applied.events, applied.results
                size = self._append_log(cursor, frontier, head.size, events)
                self._write_transfers(cursor, state, events, head.size)
                self._write_balances(cursor, state)
                self._write_pending(cursor, state)
                cursor.execute(
                    self._sql(
                        "UPDATE ledger_head SET size = ?, last_timestamp_ns = ?,"
                        " next_account_id = ? WHERE id = 1"
                    ),
                    (size, state.last_timestamp_ns, applied.next_account_id),
                )
                next_expiry = None if expiring else self._next_expiry_ns
                for stored in state.created:
                    if next_expiry is not None and stored.expires_ns and stored.result is Result.OK:
                        next_expiry = min(next_expiry, stored.expires_ns)
        except BaseException:
            # The in-memory state may hold changes that were rolled back.
            self._frontier = None
            self._forget()
            raise
        self._frontier = frontier
        self._known_size = size
        self._next_expiry_ns = next_expiry
        if len(self._accounts_cache) + len(state.accounts) > ACCOUNT_CACHE_MAX:
            self._accounts_cache.clear()
        self._accounts_cache.update(state.accounts)
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
        engine = Engine(state, now_ns)
        applied = _Applied(next_account_id=head.next_account_id)
        for item in work:
            if isinstance(item, CreateAccounts):
                created, applied.next_account_id = self._create_accounts(
                    cursor, item.specs, engine, applied.next_account_id
                )
                applied.events.extend(account for account, is_new in created if is_new)
                applied.results.append([account for account, _ in created])
                continue
            mark = len(state.created)
            if isinstance(item, CreateTransfers):
                outcomes = engine.create_transfers(item.transfers)
                applied.failed.extend(item.transfers[o.index].id for o in outcomes if not o.ok)
                applied.results.append(outcomes)
            else:
                applied.results.append(engine.expire(due))
            applied.events.extend(state.created[mark:])
        return applied

    def _forget(self) -> None:
        self._known_size = None
        self._accounts_cache.clear()
        self._next_expiry_ns = None

    def _query_next_expiry(self, cursor: Any) -> int:
        cursor.execute(
            self._sql(
                "SELECT MIN(expires_ns) FROM ledger_pending WHERE status = ? AND expires_ns > 0"
            ),
            (int(PendingStatus.PENDING),),
        )
        row = cursor.fetchone()
        return int(row[0]) if row is not None and row[0] is not None else _NEVER

    @property
    def _p(self) -> str:
        return "%s" if self._pg else "?"

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self._pg else text

    def _lock_head(self, cursor: Any) -> Head:
        # The head row lock serialises appends across replicas (SQLite: the immediate
        # transaction already holds the database's write lock).
        suffix = " FOR UPDATE" if self._pg else ""
        cursor.execute(
            "SELECT size, last_timestamp_ns, next_account_id FROM ledger_head WHERE id = 1" + suffix
        )
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError("the ledger is not initialised: LedgerStore.initialize() first")
        return Head(int(row[0]), int(row[1]), int(row[2]))

    def _frontier_for(self, cursor: Any, size: int) -> merkle.Frontier:
        frontier = self._frontier
        if frontier is not None and frontier.size == size:
            return frontier.copy()
        # Another replica appended, or first write since start: O(log n) reads.
        nodes = merkle.frontier_nodes(size)
        hashes = self._subtree_hashes(cursor, nodes)
        return merkle.Frontier.load(size, hashes.__getitem__)

    def _load_working_set(
        self,
        cursor: Any,
        items: Sequence[WorkItem],
        head: Head,
        due: Sequence[int],
        load_every_id: bool,
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
            stored.transfer.id: stored for stored in self._select_transfers(cursor, transfer_ids)
        }
        for stored in transfers.values():
            account_ids.add(stored.transfer.debit_account_id)
            account_ids.add(stored.transfer.credit_account_id)
        pending_ids = [t_id for t_id, stored in transfers.items() if stored.transfer.is_pending]
        return WorkingSet(
            accounts={
                account.id: account for account in self._select_accounts(cursor, account_ids)
            },
            transfers=transfers,
            pending_status=self._select_pending_status(cursor, pending_ids),
            last_timestamp_ns=head.last_timestamp_ns,
        )

    def _due_pending_ids(self, cursor: Any, now_ns: int) -> list[int]:
        cursor.execute(
            self._sql(
                "SELECT id FROM ledger_pending WHERE status = ? AND expires_ns > 0"
                " AND expires_ns <= ? ORDER BY expires_ns, id LIMIT ?"
            ),
            (int(PendingStatus.PENDING), now_ns, EXPIRE_BATCH_MAX),
        )
        return [id_from_bytes(bytes(row[0])) for row in cursor.fetchall()]

    def _create_accounts(
        self, cursor: Any, specs: Sequence[AccountSpec], engine: Engine, next_id: int
    ) -> tuple[list[tuple[Account, bool]], int]:
        created: list[tuple[Account, bool]] = []
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
                self._sql(
                    f"INSERT INTO ledger_accounts ({_ACCOUNT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0)"
                ),
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
        if spec.tenant is not None:
            cursor.execute(
                self._sql(
                    f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant = ? AND kind = ?"
                ),
                (spec.tenant, int(spec.kind)),
            )
        else:
            assert spec.system is not None
            cursor.execute(
                self._sql(
                    f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_accounts WHERE system = ? AND kind = ?"
                ),
                (int(spec.system), int(spec.kind)),
            )
        row = cursor.fetchone()
        return _account_of(row) if row is not None else None

    def _append_log(
        self,
        cursor: Any,
        frontier: merkle.Frontier,
        start: int,
        events: Sequence[Account | StoredTransfer],
    ) -> int:
        """L1-L3: one leaf per event, in commit order, hashed into the frontier."""
        if not self._log:
            return start
        # The append path's hot spot (see bench/ledger_verify.py): encode every entry, then
        # hash them all into the frontier in one tight loop (Frontier.append_entries).
        encode_transfer = entries.encode_transfer_recorded
        datas = [
            encode_transfer(index, event)
            if not isinstance(event, Account)
            else entries.encode_account_created(index, event)
            for index, event in enumerate(events, start)
        ]
        stored = frontier.append_entries(datas)
        end = start + len(datas)
        assert frontier.size == end
        if datas:
            cursor.executemany(
                self._sql("INSERT INTO ledger_entries (idx, data, hashes) VALUES (?, ?, ?)"),
                zip(range(start, end), datas, stored, strict=True),
            )
        return end

    def _write_transfers(
        self,
        cursor: Any,
        state: WorkingSet,
        events: Sequence[Account | StoredTransfer],
        start: int,
    ) -> None:
        rows = []
        for offset, event in enumerate(events):
            if isinstance(event, Account):
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
                    start + offset if self._log else None,
                )
            )
        if not rows:
            return
        sql = self._sql(
            f"INSERT INTO ledger_transfers ({_TRANSFER_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        try:
            cursor.executemany(sql, rows)
        except Exception as error:
            if _is_unique_violation(error):
                raise _DuplicateIdError from error
            raise

    def _write_balances(self, cursor: Any, state: WorkingSet) -> None:
        rows = []
        for account_id in state.touched_accounts:
            account = state.accounts.get(account_id)
            if account is None:
                continue
            # A13 (asserted, TigerStyle): no tenant account below zero, ever.
            assert not (account.flags & AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS) or (
                account.available >= 0
            ), f"account {account.id} would go negative"
            rows.append(
                (
                    account.debits_pending,
                    account.debits_posted,
                    account.credits_pending,
                    account.credits_posted,
                    account.id,
                )
            )
        if rows:
            cursor.executemany(
                self._sql(
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
        if inserts:
            cursor.executemany(
                self._sql("INSERT INTO ledger_pending (id, status, expires_ns) VALUES (?, ?, ?)"),
                inserts,
            )
        if updates:
            cursor.executemany(
                self._sql("UPDATE ledger_pending SET status = ? WHERE id = ?"), updates
            )

    # -- loading -------------------------------------------------------------------------------

    def _select_accounts(self, cursor: Any, ids: Iterable[int]) -> list[Account]:
        found: list[Account] = []
        wanted = [account_id for account_id in ids if 0 < account_id < 2**63]
        for chunk in _chunks(wanted):
            marks = ", ".join([self._p] * len(chunk))
            cursor.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id IN ({marks})", chunk
            )
            found.extend(_account_of(row) for row in cursor.fetchall())
        return found

    def _select_transfers(self, cursor: Any, ids: Iterable[int]) -> list[StoredTransfer]:
        found: list[StoredTransfer] = []
        for chunk in _chunks([id_to_bytes(t_id) for t_id in ids]):
            marks = ", ".join([self._p] * len(chunk))
            cursor.execute(
                f"SELECT {_TRANSFER_COLUMNS} FROM ledger_transfers WHERE id IN ({marks})", chunk
            )
            found.extend(_stored_of(row) for row in cursor.fetchall())
        return found

    def _select_pending_status(self, cursor: Any, ids: Iterable[int]) -> dict[int, PendingStatus]:
        statuses: dict[int, PendingStatus] = {}
        for chunk in _chunks([id_to_bytes(t_id) for t_id in ids]):
            marks = ", ".join([self._p] * len(chunk))
            cursor.execute(f"SELECT id, status FROM ledger_pending WHERE id IN ({marks})", chunk)
            for raw_id, status in cursor.fetchall():
                statuses[id_from_bytes(bytes(raw_id))] = PendingStatus(status)
        return statuses

    def _subtree_hashes(
        self, cursor: Any, nodes: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """L4: perfect subtree (level h, index k) is stored with leaf (k+1)*2^h - 1."""
        wanted = {node: ((node[1] + 1) << node[0]) - 1 for node in nodes}
        rows: dict[int, bytes] = {}
        for chunk in _chunks(sorted(set(wanted.values()))):
            marks = ", ".join([self._p] * len(chunk))
            cursor.execute(f"SELECT idx, hashes FROM ledger_entries WHERE idx IN ({marks})", chunk)
            rows.update((int(idx), bytes(hashes)) for idx, hashes in cursor.fetchall())
        result: dict[tuple[int, int], bytes] = {}
        for (level, index), leaf in wanted.items():
            stored = rows.get(leaf)
            if stored is None or len(stored) < (level + 1) * merkle.HASH_SIZE:
                raise LookupError(f"log entry {leaf} has no level-{level} hash stored")
            result[(level, index)] = stored[
                level * merkle.HASH_SIZE : (level + 1) * merkle.HASH_SIZE
            ]
        return result

    # -- reading -------------------------------------------------------------------------------

    def head(self) -> Head:
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT size, last_timestamp_ns, next_account_id FROM ledger_head WHERE id = 1"
            ).first()
        if row is None:
            raise RuntimeError("the ledger is not initialised")
        return Head(int(row[0]), int(row[1]), int(row[2]))

    def accounts_of(self, tenant: str) -> list[Account]:
        return self._accounts_where(AccountRow.__table__.c.tenant == tenant)  # type: ignore[attr-defined]

    def system_accounts(self) -> list[Account]:
        return self._accounts_where(AccountRow.__table__.c.system.is_not(None))  # type: ignore[attr-defined]

    def all_accounts(self) -> list[Account]:
        return self._accounts_where(sa.true())

    def _accounts_where(self, condition: sa.ColumnElement[bool]) -> list[Account]:
        table = AccountRow.__table__  # type: ignore[attr-defined]
        query = sa.select(*[table.c[name.strip()] for name in _ACCOUNT_COLUMNS.split(",")])
        with self._engine.connect() as conn:
            rows = conn.execute(query.where(condition).order_by(table.c.kind, table.c.id)).all()
        return [_account_of(tuple(row)) for row in rows]

    def transfer(self, transfer_id: int) -> StoredTransfer | None:
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            found = self._select_transfers(cursor, [transfer_id])
        return found[0] if found else None

    def list_transfers(
        self,
        *,
        account_ids: Sequence[int] | None = None,
        kind: int | None = None,
        code: int | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        before_ns: int | None = None,
        limit: int = 100,
        oldest_first: bool = False,
    ) -> list[StoredTransfer]:
        """Transfers that moved balances (OK), newest first, filtered; `before_ns` pages."""
        table = TransferRow.__table__  # type: ignore[attr-defined]
        query = sa.select(*[table.c[name.strip()] for name in _TRANSFER_COLUMNS.split(",")])
        query = query.where(table.c.result == int(Result.OK))
        if account_ids is not None:
            ids = list(account_ids)
            query = query.where(
                sa.or_(table.c.debit_account_id.in_(ids), table.c.credit_account_id.in_(ids))
            )
        if kind:
            query = query.where(table.c.kind == kind)
        if code:
            query = query.where(table.c.code == code)
        if since_ns:
            query = query.where(table.c.timestamp_ns >= since_ns)
        if until_ns:
            query = query.where(table.c.timestamp_ns < until_ns)
        if before_ns is not None:
            if oldest_first:
                query = query.where(table.c.timestamp_ns > before_ns)
            else:
                query = query.where(table.c.timestamp_ns < before_ns)
        order = table.c.timestamp_ns.asc() if oldest_first else table.c.timestamp_ns.desc()
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(order).limit(limit)).all()
        return [_stored_of(tuple(row)) for row in rows]

    def balances_at(self, account_ids: Sequence[int], at_ns: int) -> dict[int, tuple[int, ...]]:
        """(debits_pending, debits_posted, credits_pending, credits_posted) as of `at_ns`,
        by replaying the stored transfers (the same rule `verify` uses, A12)."""
        totals = {account_id: [0, 0, 0, 0] for account_id in account_ids}
        table = TransferRow.__table__  # type: ignore[attr-defined]
        query = (
            sa.select(
                table.c.debit_account_id,
                table.c.credit_account_id,
                table.c.amount,
                table.c.flags,
                table.c.released,
            )
            .where(table.c.result == int(Result.OK))
            .where(table.c.timestamp_ns <= at_ns)
            .where(
                sa.or_(
                    table.c.debit_account_id.in_(list(account_ids)),
                    table.c.credit_account_id.in_(list(account_ids)),
                )
            )
        )
        with self._engine.connect() as conn:
            for debit, credit, amount, flags, released in conn.execute(query):
                pending_delta, posted_delta = effect_of(int(flags), int(amount), int(released))
                if debit in totals:
                    totals[debit][0] += pending_delta
                    totals[debit][1] += posted_delta
                if credit in totals:
                    totals[credit][2] += pending_delta
                    totals[credit][3] += posted_delta
        return {account_id: tuple(values) for account_id, values in totals.items()}

    def all_transfers(self) -> Iterator[StoredTransfer]:
        """Every stored transfer (successes and recorded failures), in pages, oldest first.

        Each page is read on its own connection, so a caller that stops early holds nothing.
        """
        sql = self._sql(
            f"SELECT {_TRANSFER_COLUMNS} FROM ledger_transfers"
            " WHERE timestamp_ns > ? ORDER BY timestamp_ns LIMIT 10000"
        )
        after = -1
        while True:
            with self._engine.connect() as conn:
                cursor = conn.connection.cursor()
                cursor.execute(sql, (after,))
                rows = cursor.fetchall()
            if not rows:
                return
            for row in rows:
                yield _stored_of(row)
            after = int(rows[-1][10])

    def check_invariants(self) -> None:
        """A13: raise InvariantError unless every ledger invariant holds right now."""
        accounts = self.all_accounts()
        check_balances(accounts)
        check_replay(accounts, self.all_transfers())

    # -- checkpoints ---------------------------------------------------------------------------

    def sign_checkpoint(self, signer: Signer, origin: str, now_ns: int) -> Checkpoint:
        """Sign and store a checkpoint of the whole log (L5); returns the newest checkpoint.

        Runs on the writer thread. A checkpoint is never stored unless the previous one is a
        prefix of it (L6), so two inconsistent checkpoints cannot exist.
        """
        with write_transaction(self._engine) as conn:
            cursor = conn.connection.cursor()
            head = self._lock_head(cursor)
            latest = self._latest_checkpoint(cursor)
            if latest is not None and latest.size == head.size:
                return latest
            frontier = self._frontier_for(cursor, head.size)
            root = frontier.root()
            if latest is not None and latest.size > 0:
                proof = self._consistency_proof(cursor, latest.size, head.size)
                merkle.verify_consistency(latest.size, head.size, proof, latest.root_hash, root)
            note = sign_checkpoint(origin, head.size, root, signer)
            cursor.execute(
                self._sql(
                    "INSERT INTO ledger_checkpoints (size, root_hash, note, timestamp_ns)"
                    " VALUES (?, ?, ?, ?)"
                ),
                (head.size, root, note, now_ns),
            )
        return _checkpoint_of(note)

    def latest_checkpoint(self) -> Checkpoint | None:
        with self._engine.connect() as conn:
            return self._latest_checkpoint(conn.connection.cursor())

    def checkpoint_at(self, size: int) -> Checkpoint | None:
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(self._sql("SELECT note FROM ledger_checkpoints WHERE size = ?"), (size,))
            row = cursor.fetchone()
        return _checkpoint_of(str(row[0])) if row is not None else None

    def checkpoints(self) -> Iterator[Checkpoint]:
        """Every stored checkpoint, oldest first."""
        with self._engine.connect() as conn:
            for (note,) in conn.exec_driver_sql(
                "SELECT note FROM ledger_checkpoints ORDER BY size"
            ):
                yield _checkpoint_of(str(note))

    def _latest_checkpoint(self, cursor: Any) -> Checkpoint | None:
        cursor.execute("SELECT note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
        row = cursor.fetchone()
        return _checkpoint_of(str(row[0])) if row is not None else None

    # -- entries and proofs --------------------------------------------------------------------

    def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Leaves [start, end) as stored."""
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(
                self._sql(
                    "SELECT idx, data FROM ledger_entries WHERE idx >= ? AND idx < ? ORDER BY idx"
                ),
                (start, end),
            )
            return [(int(idx), bytes(data)) for idx, data in cursor.fetchall()]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            hashes = self._subtree_hashes(cursor, merkle.inclusion_proof_nodes(index, size))
        return merkle.inclusion_proof(index, size, hashes.__getitem__)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self._engine.connect() as conn:
            return self._consistency_proof(conn.connection.cursor(), size1, size2)

    def _consistency_proof(self, cursor: Any, size1: int, size2: int) -> list[bytes]:
        hashes = self._subtree_hashes(cursor, merkle.consistency_proof_nodes(size1, size2))
        return merkle.consistency_proof(size1, size2, hashes.__getitem__)

    def checkpoint_sizes_around(self, size: int) -> tuple[int | None, int | None]:
        """The sizes of the stored checkpoints just below and just above `size` (None: none)."""
        found: list[int | None] = []
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            for query in (
                "SELECT MAX(size) FROM ledger_checkpoints WHERE size < ?",
                "SELECT MIN(size) FROM ledger_checkpoints WHERE size > ?",
            ):
                cursor.execute(self._sql(query), (size,))
                row = cursor.fetchone()
                found.append(int(row[0]) if row is not None and row[0] is not None else None)
        return found[0], found[1]

    # -- the offline audit's view (orbitq.ledger.audit) ----------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[LedgerSnapshot]:
        """One consistent, read-only view of the whole stored ledger, for `orbitq ledger verify`.

        Everything is read in one transaction (a WAL snapshot on SQLite, REPEATABLE READ on
        PostgreSQL), so a broker may keep appending while the audit runs: the audit sees the
        log, the balances and the checkpoints as of one instant.
        """
        conn = self._engine.connect()
        if self._pg:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            with conn.begin():
                yield LedgerSnapshot(conn, self._pg)
        finally:
            conn.close()


class LedgerSnapshot:
    """Raw rows of the ledger for the audit, in large pages through the DBAPI cursor.

    Rows are returned as the driver gives them (tuples of ints, bytes, str, None), without a
    per-row conversion: the audit reads a million entries in a few seconds, and any per-row
    Python work here would be a noticeable share of it.
    """

    ENTRY_PAGE_ROWS = 50_000
    TRANSFER_PAGE_ROWS = 50_000

    def __init__(self, conn: sa.Connection, pg: bool) -> None:
        self._conn = conn
        self._pg = pg

    def _cursor(self) -> Any:
        return self._conn.connection.cursor()

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self._pg else text

    def head_size(self) -> int:
        cursor = self._cursor()
        cursor.execute("SELECT size FROM ledger_head WHERE id = 1")
        row = cursor.fetchone()
        return int(row[0]) if row is not None else 0

    def entry_pages(self) -> Iterator[list[tuple[int, bytes, bytes]]]:
        """(idx, data, hashes) of every stored entry in index order, in pages."""
        cursor = self._cursor()
        sql = self._sql(
            "SELECT idx, data, hashes FROM ledger_entries WHERE idx >= ? ORDER BY idx LIMIT ?"
        )
        position = 0
        while True:
            cursor.execute(sql, (position, self.ENTRY_PAGE_ROWS))
            rows: list[tuple[int, bytes, bytes]] = cursor.fetchall()
            if not rows:
                return
            yield rows
            position = int(rows[-1][0]) + 1

    def transfer_pages(self) -> Iterator[list[tuple[Any, ...]]]:
        """Every transfer row (the columns of `_TRANSFER_COLUMNS`) in timestamp order, which is
        the order of their entries in the log (A6), in pages."""
        cursor = self._cursor()
        first = f"SELECT {_TRANSFER_COLUMNS} FROM ledger_transfers ORDER BY timestamp_ns LIMIT ?"
        rest = self._sql(
            f"SELECT {_TRANSFER_COLUMNS} FROM ledger_transfers WHERE timestamp_ns > ?"
            " ORDER BY timestamp_ns LIMIT ?"
        )
        cursor.execute(self._sql(first), (self.TRANSFER_PAGE_ROWS,))
        while True:
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            if not rows:
                return
            yield rows
            cursor.execute(rest, (rows[-1][10], self.TRANSFER_PAGE_ROWS))

    # The audit reads tampered databases: a value of the wrong type (SQLite stores any type in
    # any column) becomes a LedgerIntegrityError naming the row, never a crash.

    def accounts(self) -> list[Account]:
        cursor = self._cursor()
        cursor.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_accounts ORDER BY id")
        accounts = []
        for row in cursor.fetchall():
            try:
                accounts.append(_account_of(row))
            except (TypeError, ValueError) as error:
                raise AccountIntegrityError(row[0], "?", f"the row is malformed: {error}") from None
        return accounts

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        """(size, root_hash, note) of every stored checkpoint, smallest first."""
        cursor = self._cursor()
        cursor.execute("SELECT size, root_hash, note FROM ledger_checkpoints ORDER BY size")
        rows = []
        for size, root, note in cursor.fetchall():
            if not (isinstance(size, int) and isinstance(root, bytes) and isinstance(note, str)):
                raise CheckpointIntegrityError(
                    size if isinstance(size, int) else -1, "the stored row is malformed"
                )
            rows.append((size, root, note))
        return rows

    def pending(self) -> list[tuple[bytes, int, int]]:
        """(id, status, expires_ns) of every row of the pending-transfer status table."""
        cursor = self._cursor()
        cursor.execute("SELECT id, status, expires_ns FROM ledger_pending ORDER BY id")
        rows: list[tuple[bytes, int, int]] = cursor.fetchall()
        for row in rows:
            if not (isinstance(row[0], bytes) and isinstance(row[1], int)):
                raise InvariantViolationError(f"pending status row {row[0]!r} is malformed")
        return rows


def _chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), _IN_LIST_MAX):
        yield list(values[start : start + _IN_LIST_MAX])


def _is_unique_violation(error: Exception) -> bool:
    if isinstance(error, IntegrityError):
        return True
    name = type(error).__name__
    return name in {"IntegrityError", "UniqueViolation"}


def _account_of(row: Sequence[Any]) -> Account:
    return Account(
        id=int(row[0]),
        kind=Kind(row[1]),
        tenant=row[2],
        system=SystemAccount(row[3]) if row[3] is not None else None,
        flags=int(row[4]),
        timestamp_ns=int(row[5]),
        debits_pending=int(row[6]),
        debits_posted=int(row[7]),
        credits_pending=int(row[8]),
        credits_posted=int(row[9]),
    )


def _stored_of(row: Sequence[Any]) -> StoredTransfer:
    transfer = Transfer(
        id=id_from_bytes(bytes(row[0])),
        debit_account_id=int(row[1]),
        credit_account_id=int(row[2]),
        amount=int(row[3]),
        pending_id=id_from_bytes(bytes(row[4])) if row[4] is not None else 0,
        user_data=bytes(row[5]) if row[5] is not None else b"",
        kind=int(row[6]),
        code=int(row[7]),
        flags=int(row[8]),
        timeout_seconds=int(row[9]),
        timestamp_ns=int(row[10]),
    )
    entry_index = int(row[13]) if row[13] is not None else -1
    return StoredTransfer(transfer, Result(row[11]), released=int(row[12]), entry_index=entry_index)


def _checkpoint_of(note: str) -> Checkpoint:
    # Stored notes were signed by this broker; parsing the body is enough here (verifiers
    # check the signature themselves).
    body = note.split("\n\n", 1)[0] + "\n"
    return replace(parse_checkpoint_body(body), note=note)
