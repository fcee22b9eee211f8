"""Reads of the ledger's state: the head, accounts, one transfer, history, past balances.

Owns: the queries the broker's services run outside the write path — accounts by tenant or
system, a transfer by id, the history of OK transfers with filters and keyset pages
(`list_transfers`), balances at a past instant by replaying transfers (A12), every transfer in
pages, and the full A13 check on the stored state (`check_invariants`). Each read opens its own
connection; any thread may call it.

Does not own: writing (orbitq.ledger.store.write), the log and proofs
(orbitq.ledger.store.log), or the audit's consistent snapshot (orbitq.ledger.store.snapshot).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from orbitq.ledger.invariants import check_balances, check_replay, effect_of
from orbitq.ledger.model import Account, Result, StoredTransfer
from orbitq.ledger.store.dialect import IN_LIST_VALUES_MAX, Dialect, chunks, placeholders
from orbitq.ledger.store.rows import (
    ACCOUNT_COLUMNS,
    TRANSFER_COLUMNS,
    TRANSFER_TIMESTAMP_AT,
    Head,
    account_of,
    select_head,
    select_transfers,
    stored_of,
)

# Transfers read per round trip by `all_transfers`.
TRANSFER_PAGE_ROWS = 10_000
_OK = int(Result.OK)


class LedgerReads:
    """Read-only queries over one engine."""

    def __init__(self, engine: sa.Engine, dialect: Dialect) -> None:
        self._engine = engine
        self._dialect = dialect

    def head(self) -> Head:
        with self._engine.connect() as conn:
            return select_head(conn.connection.cursor(), self._dialect, lock=False)

    def accounts_of(self, tenant: str) -> list[Account]:
        return self._accounts_where("tenant = ?", (tenant,))

    def system_accounts(self) -> list[Account]:
        return self._accounts_where("system IS NOT NULL", ())

    def all_accounts(self) -> list[Account]:
        return self._accounts_where("1 = 1", ())

    def _accounts_where(self, condition: str, params: Sequence[Any]) -> list[Account]:
        sql = f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE {condition} ORDER BY kind, id"
        return [account_of(row) for row in self._fetch(sql, params)]

    def transfer(self, transfer_id: int) -> StoredTransfer | None:
        with self._engine.connect() as conn:
            found = select_transfers(conn.connection.cursor(), self._dialect, [transfer_id])
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
        """Transfers that moved balances (OK), newest first, filtered; `before_ns` pages
        (the page after the one that ended at `before_ns`, in the same order)."""
        where = ["result = ?"]
        params: list[Any] = [_OK]
        if account_ids is not None:
            ids = list(account_ids)
            if not ids:
                return []
            if len(ids) > IN_LIST_VALUES_MAX:
                raise ValueError(f"at most {IN_LIST_VALUES_MAX} account ids, got {len(ids)}")
            marks = placeholders(len(ids))
            where.append(f"(debit_account_id IN ({marks}) OR credit_account_id IN ({marks}))")
            params += ids + ids
        for column, value in (("kind", kind), ("code", code)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if since_ns:
            where.append("timestamp_ns >= ?")
            params.append(since_ns)
        if until_ns:
            where.append("timestamp_ns < ?")
            params.append(until_ns)
        if before_ns is not None:
            where.append("timestamp_ns > ?" if oldest_first else "timestamp_ns < ?")
            params.append(before_ns)
        sql = (
            f"SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE {' AND '.join(where)}"
            f" ORDER BY timestamp_ns {'ASC' if oldest_first else 'DESC'} LIMIT ?"
        )
        return [stored_of(row) for row in self._fetch(sql, [*params, limit])]

    def balances_at(self, account_ids: Sequence[int], at_ns: int) -> dict[int, tuple[int, ...]]:
        """(debits_pending, debits_posted, credits_pending, credits_posted) as of `at_ns`,
        by replaying the stored transfers (the same rule `verify` uses, A12)."""
        totals = {account_id: [0, 0, 0, 0] for account_id in account_ids}
        for chunk in chunks(list(totals)):
            # A transfer between two chunks is read once per chunk: each read counts only the
            # sides whose account is in its own chunk.
            mine = set(chunk)
            marks = placeholders(len(chunk))
            sql = (
                "SELECT debit_account_id, credit_account_id, amount, flags, released"
                " FROM ledger_transfers WHERE result = ? AND timestamp_ns <= ?"
                f" AND (debit_account_id IN ({marks}) OR credit_account_id IN ({marks}))"
            )
            for debit, credit, amount, flags, released in self._fetch(
                sql, [_OK, at_ns, *chunk, *chunk]
            ):
                pending_delta, posted_delta = effect_of(int(flags), int(amount), int(released))
                if debit in mine:
                    totals[debit][0] += pending_delta
                    totals[debit][1] += posted_delta
                if credit in mine:
                    totals[credit][2] += pending_delta
                    totals[credit][3] += posted_delta
        return {account_id: tuple(values) for account_id, values in totals.items()}

    def all_transfers(self) -> Iterator[StoredTransfer]:
        """Every stored transfer (successes and recorded failures), in pages, oldest first.

        Each page is read on its own connection, so a caller that stops early holds nothing.
        """
        sql = (
            f"SELECT {TRANSFER_COLUMNS} FROM ledger_transfers"
            " WHERE timestamp_ns > ? ORDER BY timestamp_ns LIMIT ?"
        )
        after = -1
        while rows := self._fetch(sql, (after, TRANSFER_PAGE_ROWS)):
            for row in rows:
                yield stored_of(row)
            after = int(rows[-1][TRANSFER_TIMESTAMP_AT])

    def check_invariants(self) -> None:
        """A13 on the whole stored state: raise InvariantViolationError unless every ledger
        invariant holds right now (a full scan: tests, benchmarks and tools, not the hot path;
        the write path checks each group incrementally)."""
        accounts = self.all_accounts()
        check_balances(accounts)
        check_replay(accounts, self.all_transfers())

    def _fetch(self, sql: str, params: Sequence[Any]) -> Sequence[Any]:
        """All rows of one query (written with `?` placeholders) on its own connection."""
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(self._dialect.sql(sql), params)
            return cursor.fetchall()
