"""orbitq.ledger.store: every piece of the ledger that touches the database.

The rest of orbitq.ledger is pure (no database, no network); this package is its I/O, imported
explicitly. It speaks raw SQL through the DBAPI cursor (one `Dialect` for SQLite and
PostgreSQL), with SQLAlchemy only for the engine, its connection pool and transactions, and
SQLModel only to declare the tables (docs/architecture.md, "Database access", says why).

| module         | owns                                                                     |
| -------------- | ------------------------------------------------------------------------ |
| `dialect`      | the one SQL-dialect helper: placeholders, FOR UPDATE, IN-list chunks,    |
|                | unique violations                                                        |
| `tables`       | the tables (SQLModel declarations the migrations create)                 |
| `transactions` | `write_transaction`, the write-lock convention the services share        |
| `rows`         | column lists, rows → model objects, the head, lookups by key             |
| `work`         | the work items callers queue (`CreateTransfers`, `CreateAccounts`,       |
|                | `RecordEvidence`, ...) and their results                                 |
| `write`        | the group-commit transaction: head lock, working set, engine, A13        |
|                | assertion, log append, rows                                              |
| `reads`        | accounts, one transfer, history, balances at an instant, full A13 check  |
| `log`          | checkpoints, entries, inclusion and consistency proofs, the frontier     |
| `evidence`     | the evidence entries (node keys, receipts) by digest, node or request    |
| `snapshot`     | the audit's consistent read-only view (`LedgerSnapshot`)                 |
| `facade`       | `LedgerStore`: the parts composed over one engine                        |
| `writer`       | `GroupCommitWriter`: the queue and thread in front of the write path;    |
|                | halts on a broken invariant                                              |

Does not own: the rules (orbitq.ledger.engine), the invariants' definitions
(orbitq.ledger.invariants), the Merkle arithmetic (orbitq.ledger.merkle), engines and
migrations (orbitq.services.db).
"""

from __future__ import annotations

from orbitq.ledger.entries import Evidence, EvidenceKind, NodeKeyEvidence, ReceiptEvidence
from orbitq.ledger.store.evidence import StoredEvidence
from orbitq.ledger.store.facade import LedgerStore
from orbitq.ledger.store.rows import Head
from orbitq.ledger.store.snapshot import LedgerSnapshot
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
    work_weight,
)
from orbitq.ledger.store.writer import (
    GROUP_WEIGHT_MAX,
    QUEUE_ITEMS_MAX,
    CommitInfo,
    GroupCommitWriter,
    WriterHaltedError,
    WriterOverloadedError,
    WriterStoppedError,
)

__all__ = [
    "EXPIRE_BATCH_MAX",
    "GROUP_WEIGHT_MAX",
    "QUEUE_ITEMS_MAX",
    "AccountSpec",
    "AttachedRows",
    "AttachedWrite",
    "AttachedWriteError",
    "CommitInfo",
    "CreateAccounts",
    "CreateTransfers",
    "Evidence",
    "EvidenceKind",
    "EvidenceRecorded",
    "ExpireDue",
    "GroupCommitWriter",
    "Head",
    "LedgerSnapshot",
    "LedgerStore",
    "NodeKeyEvidence",
    "Outcomes",
    "ReceiptEvidence",
    "RecordEvidence",
    "StoredEvidence",
    "WorkItem",
    "WorkResult",
    "WriterHaltedError",
    "WriterOverloadedError",
    "WriterStoppedError",
    "work_weight",
]
