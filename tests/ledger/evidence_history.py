"""A ledger with evidence, made through the real store: a node key enrolled, a tenant's
reservation settled against a node-signed usage receipt (E5), and the tools the tests use to
corrupt it the way an attacker with write access (and, for some, the signing key) would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from orbitq.ledger import Signer, merkle
from orbitq.ledger.entries import NodeKeyEvidence, ReceiptEvidence
from orbitq.ledger.model import Code, Kind, Outcome, SystemAccount, Transfer, TransferFlag
from orbitq.ledger.receipts import charge_of, receipt_digest, sign_receipt
from orbitq.ledger.store import AccountSpec, LedgerStore
from orbitq.ledger.store.evidence import EVIDENCE_COLUMNS
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate
from tests.ledger.agent_formats import NODE, RATE, RUNTIME, Key, sample_receipt

ORIGIN = "evidence.test/ledger"
START_NS = 1_764_979_200_000_000_000
REQUEST = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
RESERVED = {Kind.CPU: 100, Kind.STORAGE: 300, Kind.LINK: 10}
# What the sample receipt backs (cpu 83, storage 256, link 3): what settlements post by default.
CHARGED = {kind: charge_of(sample_receipt()).of(kind) for kind in Kind}


@dataclass
class EvidenceLedger:
    store: LedgerStore
    signer: Signer
    node_key: Key
    clock: Iterator[int]
    accounts: dict[tuple[str, Kind], int]
    ids: Iterator[int] = field(default_factory=lambda: count(1000))

    def now(self) -> int:
        return next(self.clock)

    def enroll(self, key: Key, node: str = NODE, rate: int = RATE) -> int:
        recorded = self.store.record_evidence(
            NodeKeyEvidence(node, key.public, rate, RUNTIME), self.now()
        )
        return recorded.entry_index

    def reserve(self, request_id: str = REQUEST) -> dict[Kind, int]:
        """Linked pending transfers acme -> escrow, one per kind: what settlements post."""
        pending = {kind: next(self.ids) for kind in Kind}
        transfers = [
            Transfer(
                pending[kind],
                self.accounts[("acme", kind)],
                self.accounts[("escrow", kind)],
                RESERVED[kind],
                user_data=bytes.fromhex(request_id),
                kind=int(kind),
                code=int(Code.RESERVE),
                flags=TransferFlag.PENDING | (TransferFlag.LINKED if kind != Kind.LINK else 0),
            )
            for kind in Kind
        ]
        assert all(o.ok for o in self.store.create_transfers(transfers, self.now()))
        return pending

    def settle(
        self,
        envelope: bytes,
        pending: dict[Kind, int],
        *,
        request_id: str = REQUEST,
        node: str = NODE,
        amounts: dict[Kind, int] | None = None,
        user_data: bytes | None = None,
    ) -> tuple[int, list[Outcome], list[int]]:
        """Post each reservation (the sample receipt's charge, unless `amounts` says) with
        the receipt's digest as user_data, the receipt recorded first: (its entry, outcomes,
        ids of the posts)."""
        ids = [next(self.ids) for _ in Kind]
        transfers = [
            Transfer(
                transfer_id,
                pending_id=pending[kind],
                amount=(amounts or CHARGED)[kind],
                user_data=user_data if user_data is not None else receipt_digest(envelope),
                code=int(Code.SETTLE),
                flags=TransferFlag.POST_PENDING | (TransferFlag.LINKED if kind != Kind.LINK else 0),
            )
            for transfer_id, kind in zip(ids, Kind, strict=True)
        ]
        outcomes = self.store.create_transfers(
            transfers, self.now(), evidence=ReceiptEvidence(request_id, node, envelope)
        )
        assert outcomes.evidence is not None
        return outcomes.evidence.entry_index, list(outcomes), ids

    def receipt(self, key: Key | None = None, **changes: object) -> bytes:
        signer = key or self.node_key
        return sign_receipt(sample_receipt(**changes), signer.private, signer.kid)

    def checkpoint(self) -> None:
        self.store.sign_checkpoint(self.signer, ORIGIN, self.now())

    # -- tampering ---------------------------------------------------------------------------

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        engine = self.store.engine
        if engine.dialect.name == "postgresql":
            statement = statement.replace("?", "%s")
        with engine.begin() as conn:
            result = conn.exec_driver_sql(statement, tuple(params))
            return [tuple(row) for row in result] if result.returns_rows else []

    def entry(self, index: int) -> bytes:
        ((data,),) = self.sql("SELECT data FROM ledger_entries WHERE idx = ?", index)
        return bytes(data)

    def rewrite(self, replacements: dict[int, bytes]) -> None:
        """Replace entries, recompute every stored hash and re-sign one checkpoint over the
        log, as an attacker holding the signing key would: only the content rules can tell."""
        rows = self.sql("SELECT idx, data FROM ledger_entries ORDER BY idx")
        frontier = merkle.Frontier.empty()
        for index, stored in rows:
            data = replacements.get(int(index), bytes(stored))
            hashes = b"".join(frontier.append(merkle.leaf_hash(data)))
            self.sql(
                "UPDATE ledger_entries SET data = ?, hashes = ? WHERE idx = ?", data, hashes, index
            )
        # ... and starts a new checkpoint chain (L19), the head row's counters to match.
        self.sql("DELETE FROM ledger_checkpoints")
        self.sql("UPDATE ledger_head SET checkpoints = 0, checkpoint_hash = NULL")
        self.store.log.remember(None)
        self.checkpoint()

    def evidence_rows(self) -> list[tuple[Any, ...]]:
        return self.sql(f"SELECT {EVIDENCE_COLUMNS} FROM ledger_evidence ORDER BY entry_index")


def build(db_url: str) -> tuple[EvidenceLedger, Any]:
    """System accounts, tenant acme minted; node starlink-31234 enrolled; request REQUEST
    reserved and settled against the sample receipt; a checkpoint. Returns the ledger and
    its engine (dispose it)."""
    engine = create_engine(db_url)
    migrate(engine)
    store = LedgerStore(engine)
    clock = count(START_NS, 1_000_000)
    store.initialize(next(clock))
    acme = store.create_accounts([AccountSpec(kind, tenant="acme") for kind in Kind], next(clock))
    accounts = {("acme", account.kind): account.id for account in acme}
    for account in store.system_accounts():
        if account.system is SystemAccount.ESCROW:
            accounts[("escrow", account.kind)] = account.id
        if account.system is SystemAccount.TREASURY:
            accounts[("treasury", account.kind)] = account.id
    mints = [
        Transfer(
            index + 1,
            accounts[("treasury", kind)],
            accounts[("acme", kind)],
            10_000,
            kind=int(kind),
            code=int(Code.MINT),
        )
        for index, kind in enumerate(Kind)
    ]
    assert all(o.ok for o in store.create_transfers(mints, next(clock)))
    ledger = EvidenceLedger(store, Signer.generate(ORIGIN), Key.from_seed(NODE, 3), clock, accounts)
    ledger.enroll(ledger.node_key)
    _, outcomes, _ = ledger.settle(ledger.receipt(), ledger.reserve())
    assert all(o.ok for o in outcomes)
    ledger.checkpoint()
    return ledger, engine
