"""The ledger's rows as the DBAPI returns them, and the keyed lookups writes and reads share.

Owns: the column lists the store selects (`ACCOUNT_COLUMNS`, `TRANSFER_COLUMNS`: the audit
reads transfer rows positionally in this order), turning a row into an `Account`, a
`StoredTransfer` or a `Checkpoint`, the log head (`Head`), and the lookups by key that both the
write path and the reads run: the head, accounts by id, transfers by id.

Does not own: the tables' shape (orbitq.ledger.store.tables), dialect differences
(orbitq.ledger.store.dialect), or any query that belongs to one job only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from orbitq.ledger.checkpoint import Checkpoint, parse_checkpoint_body
from orbitq.ledger.model import (
    Account,
    Kind,
    Result,
    StoredTransfer,
    SystemAccount,
    Transfer,
    id_from_bytes,
    id_to_bytes,
)
from orbitq.ledger.store.dialect import Dialect

ACCOUNT_COLUMNS = (
    "id, kind, tenant, system, flags, timestamp_ns,"
    " debits_pending, debits_posted, credits_pending, credits_posted"
)
TRANSFER_COLUMNS = (
    "id, debit_account_id, credit_account_id, amount, pending_id, user_data, kind, code,"
    " flags, timeout_seconds, timestamp_ns, result, released, entry_index"
)
# Position of timestamp_ns in TRANSFER_COLUMNS: the key the pages of transfers continue from.
TRANSFER_TIMESTAMP_AT = 10
# Account ids are 64-bit but stored as signed BIGINT: larger ids cannot exist (A3).
_ACCOUNT_ID_STORED_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Head:
    """The one-row head of the log: its size, the newest entry's timestamp, the next account
    id, and the count and body hash of the stored checkpoints' newest (L19)."""

    size: int
    last_timestamp_ns: int
    next_account_id: int
    checkpoints: int
    checkpoint_hash: bytes | None


def select_head(cursor: Any, dialect: Dialect, *, lock: bool) -> Head:
    """The head; `lock` row-locks it until the transaction ends (serialises appends across
    replicas on PostgreSQL; on SQLite the immediate transaction already holds the lock)."""
    cursor.execute(head_query(dialect, lock=lock))
    return head_of(cursor.fetchone())


def head_query(dialect: Dialect, *, lock: bool) -> str:
    """The statement `select_head` runs (for a caller that sends it in a pipeline)."""
    return (
        "SELECT size, last_timestamp_ns, next_account_id, checkpoints, checkpoint_hash"
        " FROM ledger_head WHERE id = 1" + (dialect.for_update if lock else "")
    )


def head_of(row: Sequence[Any] | None) -> Head:
    """The head from the row of `head_query`."""
    if row is None:
        raise RuntimeError("the ledger is not initialised: LedgerStore.initialize() first")
    return Head(
        int(row[0]),
        int(row[1]),
        int(row[2]),
        int(row[3]),
        bytes(row[4]) if row[4] is not None else None,
    )


def storable_account_ids(ids: Iterable[int]) -> list[int]:
    """The ids among `ids` that an account row can have (others cannot exist: A3)."""
    return [account_id for account_id in ids if 0 < account_id <= _ACCOUNT_ID_STORED_MAX]


def select_accounts(cursor: Any, dialect: Dialect, ids: Iterable[int]) -> list[Account]:
    """The accounts with these ids that exist (any order)."""
    wanted = storable_account_ids(ids)
    select = f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id"
    return [account_of(row) for row in dialect.select_in(cursor, select, wanted)]


def select_transfers(cursor: Any, dialect: Dialect, ids: Iterable[int]) -> list[StoredTransfer]:
    """The stored transfers (successes and recorded failures) with these ids (any order)."""
    keys = [id_to_bytes(transfer_id) for transfer_id in ids]
    select = f"SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE id"
    return [stored_of(row) for row in dialect.select_in(cursor, select, keys)]


def account_of(row: Sequence[Any]) -> Account:
    """An account from a row of ACCOUNT_COLUMNS."""
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


def stored_of(row: Sequence[Any]) -> StoredTransfer:
    """A stored transfer from a row of TRANSFER_COLUMNS."""
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


def checkpoint_of(note: str) -> Checkpoint:
    """A stored checkpoint note. Stored notes were signed by this broker; parsing the body is
    enough here (verifiers check the signature themselves)."""
    body = note.split("\n\n", 1)[0] + "\n"
    return replace(parse_checkpoint_body(body), note=note)
