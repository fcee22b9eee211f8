"""`LedgerStore`: the one object callers hold, composed of the store's parts.

Owns: wiring one SQLAlchemy engine (SQLite or PostgreSQL) to the write path, the reads, the
log and the audit snapshot with one `Dialect`, and exposing their methods under one name, so a
caller holds one store and each method is implemented (and documented) in the module of its
job. The convenience writes (`create_accounts`, `create_transfers`, `expire_due`,
`record_evidence`) each run one work item in its own transaction, for tools and tests; the
broker goes through the group-commit writer.

Does not own: any SQL (the parts do) or threading (orbitq.ledger.store.writer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa

from orbitq.ledger.engine import Engine
from orbitq.ledger.entries import Evidence
from orbitq.ledger.model import Account, Outcome, Transfer
from orbitq.ledger.store.dialect import Dialect
from orbitq.ledger.store.evidence import EvidenceReads
from orbitq.ledger.store.log import LedgerLog
from orbitq.ledger.store.reads import LedgerReads
from orbitq.ledger.store.snapshot import LedgerSnapshot, open_snapshot
from orbitq.ledger.store.work import (
    AccountSpec,
    CreateAccounts,
    CreateTransfers,
    EvidenceRecorded,
    ExpireDue,
    Outcomes,
    RecordEvidence,
)
from orbitq.ledger.store.write import Rules, WritePath


class LedgerStore:
    """Ledger persistence over one engine: writes from one thread, reads from any.

    `log=False` skips the signed log's entries (bench/ledger_verify.py measures what they
    cost); `assert_invariants=False` skips the per-group A13 check (bench/ledger.py measures
    what it costs); `rules` replaces the engine (tests inject a faulty one). Production code
    passes none of them.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        log: bool = True,
        assert_invariants: bool = True,
        rules: Rules = Engine,
    ) -> None:
        self._engine = engine
        self._dialect = Dialect.of(engine)
        self.log = LedgerLog(engine, self._dialect)
        self.reads = LedgerReads(engine, self._dialect)
        self.evidence_reads = EvidenceReads(engine, self._dialect)
        self.writes = WritePath(
            engine,
            self._dialect,
            self.log,
            append_entries=log,
            assert_invariants=assert_invariants,
            rules=rules,
        )
        # writes (orbitq.ledger.store.write)
        self.initialize = self.writes.initialize
        self.write = self.writes.write
        # reads (orbitq.ledger.store.reads)
        self.head = self.reads.head
        self.accounts_of = self.reads.accounts_of
        self.system_accounts = self.reads.system_accounts
        self.all_accounts = self.reads.all_accounts
        self.transfer = self.reads.transfer
        self.list_transfers = self.reads.list_transfers
        self.balances_at = self.reads.balances_at
        self.all_transfers = self.reads.all_transfers
        self.check_invariants = self.reads.check_invariants
        # evidence (orbitq.ledger.store.evidence)
        self.evidence = self.evidence_reads.evidence
        self.node_key = self.evidence_reads.node_key
        self.receipt_of = self.evidence_reads.receipt_of
        # the log (orbitq.ledger.store.log)
        self.sign_checkpoint = self.log.sign_checkpoint
        self.latest_checkpoint = self.log.latest_checkpoint
        self.checkpoint_at = self.log.checkpoint_at
        self.checkpoints = self.log.checkpoints
        self.checkpoint_sizes_around = self.log.checkpoint_sizes_around
        self.entries = self.log.entries
        self.inclusion_proof = self.log.inclusion_proof
        self.consistency_proof = self.log.consistency_proof

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    @contextmanager
    def snapshot(self) -> Iterator[LedgerSnapshot]:
        """One consistent, read-only view of the whole stored ledger, for the audit
        (orbitq.ledger.store.snapshot)."""
        with open_snapshot(self._engine, self._dialect) as snapshot:
            yield snapshot

    def create_accounts(self, specs: Sequence[AccountSpec], now_ns: int) -> list[Account]:
        """One CreateAccounts item in its own transaction."""
        (result,) = self.write([CreateAccounts(tuple(specs))], now_ns)
        return [account for account in result if isinstance(account, Account)]

    def create_transfers(
        self, transfers: Sequence[Transfer], now_ns: int, *, evidence: Evidence | None = None
    ) -> Outcomes:
        """One CreateTransfers item (with its evidence, if any) in its own transaction."""
        (result,) = self.write([CreateTransfers(tuple(transfers), evidence)], now_ns)
        assert isinstance(result, Outcomes)
        return result

    def record_evidence(self, evidence: Evidence, now_ns: int) -> EvidenceRecorded:
        """One RecordEvidence item in its own transaction."""
        (result,) = self.write([RecordEvidence(evidence)], now_ns)
        (recorded,) = result
        assert isinstance(recorded, EvidenceRecorded)
        return recorded

    def expire_due(self, now_ns: int) -> list[Outcome]:
        """Release the pending transfers due by `now_ns` in their own transaction."""
        (result,) = self.write([ExpireDue()], now_ns)
        return [outcome for outcome in result if isinstance(outcome, Outcome)]
