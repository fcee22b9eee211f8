"""The SDK's `verify_receipt` (docs/ledger-format.md C6) against a real broker: the evidence is
written into the broker's ledger through its own writer, the proofs and checkpoints come from
its real LedgerService over gRPC, SQLite and PostgreSQL.

GetEvidence is served here, by the test, from the broker's store (the broker-side servicer is
built separately): each test answers it as an honest broker would, or as a lying one does, and
the client must catch every lie by what the signed log proves.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from orbitq.clients import (
    AsyncBrokerClient,
    BrokerClient,
    BrokerIntegrityError,
    EntryVerificationError,
    FailedPreconditionError,
)
from orbitq.clients._calls import Call
from orbitq.ledger.entries import NodeKeyEvidence, ReceiptEvidence
from orbitq.ledger.model import Code, Kind, SystemAccount, Transfer, TransferFlag, id_to_bytes
from orbitq.ledger.receipts import charge_of, receipt_digest, sign_receipt
from orbitq.ledger.store import CreateTransfers, Outcomes, RecordEvidence
from orbitq.services.broker import Broker
from orbitq.v1 import request_pb2
from tests.conftest import ServerHandle
from tests.ledger.agent_formats import NODE, RATE, RUNTIME, Key, sample_receipt

T = TypeVar("T")
REQUEST = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
OTHER = "00112233445566778899aabbccddeeff"
NODE_KEY = Key.from_seed(NODE, 3)
CHARGE = charge_of(sample_receipt())


@dataclass
class Settled:
    """A request settled against its receipt in the broker's ledger."""

    server: ServerHandle
    trust_dir: Path
    envelope: bytes
    receipt_entry: int
    node_key_entry: int
    settlements: list[int]
    ticket: bytes = b"the ticket"

    @property
    def broker(self) -> Broker:
        return self.server.broker

    def evidence(self, **changes: Any) -> request_pb2.GetEvidenceResponse:
        """GetEvidence as an honest broker answers it (from its store), with `changes`."""
        store = self.broker.store
        recorded = store.receipt_of(REQUEST)
        assert recorded is not None
        key = store.node_key(NODE, before=recorded.entry_index)
        assert key is not None
        assert isinstance(key.evidence, NodeKeyEvidence)
        fields: dict[str, Any] = {
            "request": request_pb2.ServiceRequest(id=REQUEST, receipt_digest=recorded.digest),
            "ticket": self.ticket,
            "receipt": self.envelope,
            "receipt_entry_index": recorded.entry_index,
            "node_key_entry_index": key.entry_index,
            "node_public_key": key.evidence.public_key,
            "settlement_transfer_ids": [id_to_bytes(i) for i in self.settlements],
        }
        fields.update(changes)
        return request_pb2.GetEvidenceResponse(**fields)

    def client(self, answer: request_pb2.GetEvidenceResponse | None = None) -> BrokerClient:
        return EvidenceClient(
            self.server.target,
            self.server.operator_key,
            trust_dir=self.trust_dir,
            answer=lambda: answer if answer is not None else self.evidence(),
        )


class EvidenceClient(BrokerClient):
    """The blocking client, with GetEvidence answered by the test and every other call sent
    to the real broker."""

    def __init__(
        self, *args: Any, answer: Callable[[], request_pb2.GetEvidenceResponse], **options: Any
    ) -> None:
        super().__init__(*args, **options)
        self._answer = answer

    def _run(self, call: Call[T]) -> T:
        if call.method == "GetEvidence":
            return call.parse(self._answer())
        return super()._run(call)


def write(broker: Broker, item: RecordEvidence | CreateTransfers) -> Any:
    return broker.writer.apply(item)


def accounts(broker: Broker, tenant: str) -> dict[tuple[str, Kind], int]:
    found = {(tenant, a.kind): a.id for a in broker.store.accounts_of(tenant)}
    for account in broker.store.system_accounts():
        if account.system is SystemAccount.ESCROW:
            found[("escrow", account.kind)] = account.id
    return found


def settle(
    broker: Broker,
    request_id: str,
    envelope: bytes,
    first_id: int,
    amounts: dict[Kind, int] | None = None,
) -> tuple[int, list[int]]:
    """Reserve acme's tokens for `request_id` and post them against the receipt `envelope`
    (recorded first, in the same item): (the receipt's entry, the posts' ids)."""
    ids = accounts(broker, "acme")
    pending = {kind: first_id + int(kind) for kind in Kind}
    reserve = [
        Transfer(
            pending[kind],
            ids[("acme", kind)],
            ids[("escrow", kind)],
            500,
            kind=int(kind),
            code=int(Code.RESERVE),
            flags=TransferFlag.PENDING,
        )
        for kind in Kind
    ]
    assert all(o.ok for o in write(broker, CreateTransfers(tuple(reserve))))
    posts = {kind: first_id + 10 + int(kind) for kind in Kind}
    settle_ = [
        Transfer(
            posts[kind],
            pending_id=pending[kind],
            amount=(amounts or {}).get(kind, CHARGE.of(kind)),
            user_data=receipt_digest(envelope),
            code=int(Code.SETTLE),
            flags=TransferFlag.POST_PENDING,
        )
        for kind in Kind
    ]
    result = write(
        broker,
        CreateTransfers(tuple(settle_), ReceiptEvidence(request_id, NODE, envelope)),
    )
    assert isinstance(result, Outcomes)
    assert all(o.ok for o in result)
    assert result.evidence is not None
    return result.evidence.entry_index, list(posts.values())


@pytest.fixture
def settled(server: ServerHandle, tmp_path: Path) -> Settled:
    trust_dir = tmp_path / "trust"
    with BrokerClient(server.target, server.operator_key, trust_dir=trust_dir) as admin:
        admin.create_tenant("acme")
        admin.mint("acme", cpu=10_000, storage=10_000, link=10_000)
    broker = server.broker
    (key,) = write(broker, RecordEvidence(NodeKeyEvidence(NODE, NODE_KEY.public, RATE, RUNTIME)))
    envelope = sign_receipt(
        sample_receipt(ticket_sha256=hashlib.sha256(b"the ticket").digest()),
        NODE_KEY.private,
        NODE_KEY.kid,
    )
    entry, posts = settle(broker, REQUEST, envelope, first_id=1_000)
    broker.sign_checkpoint()
    return Settled(server, trust_dir, envelope, entry, key.entry_index, posts)


def test_an_honest_brokers_receipt_verifies(settled: Settled) -> None:
    with settled.client() as client:
        verified = client.verify_receipt(REQUEST)
    assert verified.request_id == REQUEST
    assert verified.node == NODE
    assert verified.outcome == "ok"
    assert verified.digest == receipt_digest(settled.envelope)
    assert verified.receipt == settled.envelope
    assert verified.fuel == sample_receipt().fuel
    assert (verified.charge.cpu, verified.charge.storage, verified.charge.link) == (
        CHARGE.cpu,
        CHARGE.storage,
        CHARGE.link,
    )
    assert verified.settled == verified.charge
    assert (verified.receipt_entry, verified.node_key_entry) == (
        settled.receipt_entry,
        settled.node_key_entry,
    )
    assert verified.node_public_key == NODE_KEY.public
    assert verified.fuel_per_core_second == RATE
    assert {t.user_data for t in verified.settlements} == {verified.digest}
    assert [t.code for t in verified.settlements] == ["settle"] * 3
    assert verified.checkpoint.size > verified.receipt_entry
    assert verified.started_at.timestamp() == sample_receipt().start


def test_the_asyncio_client_verifies_the_same(settled: Settled) -> None:
    class AsyncEvidenceClient(AsyncBrokerClient):
        async def _run(self, call: Call[T]) -> T:
            if call.method == "GetEvidence":
                return call.parse(settled.evidence())
            return await super()._run(call)

    async def run() -> str:
        async with AsyncEvidenceClient(
            settled.server.target, settled.server.operator_key, trust_dir=settled.trust_dir
        ) as client:
            return (await client.verify_receipt(REQUEST.upper())).request_id

    assert asyncio.run(run()) == REQUEST


def test_the_log_with_evidence_still_verifies_and_decodes(settled: Settled) -> None:
    with settled.client() as client:
        assert client.verify_log().entries == settled.broker.store.head().size
        key = client.prove_entry(settled.node_key_entry).entry
        receipt = client.prove_entry(settled.receipt_entry).entry
    assert key.type == "node_key_enrolled"
    assert key.node_key is not None
    assert (key.node_key.node, key.node_key.public_key) == (NODE, NODE_KEY.public)
    assert key.node_key.key_id == NODE_KEY.kid
    assert receipt.type == "receipt_recorded"
    assert receipt.receipt is not None
    assert receipt.receipt.digest == receipt_digest(settled.envelope)


def test_no_receipt_yet_is_a_failed_precondition(settled: Settled) -> None:
    answer = settled.evidence(
        receipt=b"",
        request=request_pb2.ServiceRequest(id=REQUEST, state=request_pb2.REQUEST_STATE_RUNNING),
    )
    with settled.client(answer) as client, pytest.raises(FailedPreconditionError) as caught:
        client.verify_receipt(REQUEST)
    assert caught.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "has no usage receipt yet (it is running)" in str(caught.value)


def test_a_request_id_must_be_hex(settled: Settled) -> None:
    with settled.client() as client, pytest.raises(ValueError, match="32 hex digits"):
        client.verify_receipt("nope")


# -- a lying broker ----------------------------------------------------------------------------

OTHER_RECEIPT = sign_receipt(sample_receipt(fuel=RATE, cpu_core_seconds=1), *NODE_KEY.signing())


def lie(settled: Settled, **changes: Any) -> BrokerIntegrityError:
    with (
        settled.client(settled.evidence(**changes)) as client,
        pytest.raises(BrokerIntegrityError) as caught,
    ):
        client.verify_receipt(REQUEST)
    return caught.value


def test_another_receipt_than_the_logged_one(settled: Settled) -> None:
    error = lie(settled, receipt=OTHER_RECEIPT)
    assert isinstance(error, EntryVerificationError)
    assert error.index == settled.receipt_entry
    assert "not the receipt broker" in str(error)


def test_a_receipt_entry_that_is_not_one(settled: Settled) -> None:
    error = lie(settled, receipt_entry_index=settled.receipt_entry + 1)
    assert isinstance(error, EntryVerificationError)
    assert error.index == settled.receipt_entry + 1
    assert "but it records transfer_recorded" in str(error)


def test_another_node_key(settled: Settled) -> None:
    error = lie(settled, node_public_key=Key.from_seed(NODE, 77).public)
    assert isinstance(error, EntryVerificationError)
    assert error.index == settled.node_key_entry
    assert "enrolls another key than the one served" in str(error)


def test_the_key_entry_of_another_node(settled: Settled) -> None:
    stranger = Key.from_seed("elsewhere", 5)
    (entry,) = write(
        settled.broker,
        RecordEvidence(NodeKeyEvidence("elsewhere", stranger.public, RATE, RUNTIME)),
    )
    settled.broker.sign_checkpoint()
    error = lie(settled, node_key_entry_index=entry.entry_index)
    assert isinstance(error, EntryVerificationError)
    assert "enrolls a key of node elsewhere" in str(error)


def test_a_key_enrolled_after_the_receipt(settled: Settled) -> None:
    (entry,) = write(
        settled.broker,
        RecordEvidence(NodeKeyEvidence(NODE, NODE_KEY.public, RATE, "wasmtime 52.0.0")),
    )
    settled.broker.sign_checkpoint()
    error = lie(settled, node_key_entry_index=entry.entry_index)
    assert isinstance(error, EntryVerificationError)
    assert f"comes after the receipt's entry {settled.receipt_entry}" in str(error)


def test_a_settlement_that_is_not_one(settled: Settled) -> None:
    mint = settled.broker.store.list_transfers(code=int(Code.MINT), limit=1)[0]
    ids = [id_to_bytes(i) for i in settled.settlements] + [id_to_bytes(mint.transfer.id)]
    error = lie(settled, settlement_transfer_ids=ids)
    assert isinstance(error, EntryVerificationError)
    assert error.index == mint.entry_index
    assert "does not carry the receipt's digest" in str(error)


def test_too_many_settlements(settled: Settled) -> None:
    ids = [id_to_bytes(i) for i in range(1, 18)]
    assert "a receipt settles at most 16" in str(lie(settled, settlement_transfer_ids=ids))


def test_another_receipt_digest_on_the_request(settled: Settled) -> None:
    request = request_pb2.ServiceRequest(id=REQUEST, receipt_digest=bytes(32))
    assert "settled against receipt 0000" in str(lie(settled, request=request))


def test_a_ticket_the_receipt_does_not_name(settled: Settled) -> None:
    assert "ticket digest its node's receipt names" in str(lie(settled, ticket=b"another"))


# -- a broker that logged bad evidence -----------------------------------------------------------


def _logged(settled: Settled, envelope: bytes, **amounts: int) -> BrokerIntegrityError:
    """Settle request OTHER against `envelope` in the log, then verify it."""
    broker = settled.broker
    entry, posts = settle(
        broker, OTHER, envelope, 2_000, {Kind[k.upper()]: v for k, v in amounts.items()}
    )
    broker.sign_checkpoint()
    answer = settled.evidence(
        request=request_pb2.ServiceRequest(id=OTHER),
        ticket=b"",  # none shown: the ticket binding is not checked
        receipt=envelope,
        receipt_entry_index=entry,
        settlement_transfer_ids=[id_to_bytes(i) for i in posts],
    )
    with settled.client(answer) as client, pytest.raises(BrokerIntegrityError) as caught:
        client.verify_receipt(OTHER)
    return caught.value


def test_a_logged_receipt_not_signed_by_the_node(settled: Settled) -> None:
    forged = sign_receipt(sample_receipt(request_id=OTHER), *Key.from_seed(NODE, 66).signing())
    error = _logged(settled, forged)
    assert isinstance(error, EntryVerificationError)
    assert "does not verify under node starlink-31234's key" in str(error)


def test_a_logged_receipt_off_the_enrolled_rate(settled: Settled) -> None:
    envelope = sign_receipt(
        sample_receipt(request_id=OTHER, fuel=RATE * 3, cpu_core_seconds=1), *NODE_KEY.signing()
    )
    error = _logged(settled, envelope)
    assert isinstance(error, EntryVerificationError)
    assert "that is 3" in str(error)


def test_a_settlement_beyond_the_receipts_charge(settled: Settled) -> None:
    envelope = sign_receipt(sample_receipt(request_id=OTHER), *NODE_KEY.signing())
    error = _logged(settled, envelope, link=CHARGE.link + 1)
    assert f"settled {CHARGE.link + 1} link against the receipt" in str(error)
    assert f"which backs {CHARGE.link}" in str(error)
