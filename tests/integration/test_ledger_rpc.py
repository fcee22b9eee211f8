"""LedgerService end to end: real server on loopback, raw stubs and the SDK, both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from orbitq.clients import BrokerClient, new_id
from orbitq.ledger import (
    EMPTY_ROOT,
    leaf_hash,
    root_of,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from orbitq.services.clock import SimulatedClock
from orbitq.v1 import ledger_pb2, ledger_pb2_grpc
from tests.conftest import ServerHandle
from tests.ledger_history import History, build_history


class Ledger:
    """Raw LedgerService calls with a key, answering (response) or raising grpc.RpcError."""

    def __init__(self, channel: grpc.Channel, api_key: str) -> None:
        self._stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)

    def __getattr__(self, method: str) -> Any:
        call = getattr(self._stub, method)

        def invoke(request: object) -> Any:
            return call(request, timeout=10, metadata=self._metadata)

        return invoke


@pytest.fixture
def history(server: ServerHandle, clock: SimulatedClock, tmp_path: Path) -> History:
    return build_history(server, clock, tmp_path / "trust")


@pytest.fixture
def channel(server: ServerHandle) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as channel:
        yield channel


def status_of(error: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    code: grpc.StatusCode = error.value.code()
    return code


def details_of(error: pytest.ExceptionInfo[grpc.RpcError]) -> str:
    return str(error.value.details())


def test_get_checkpoint_and_public_key(
    server: ServerHandle, history: History, channel: grpc.Channel
) -> None:
    tenant = Ledger(channel, history.acme_key)
    key = tenant.GetPublicKey(ledger_pb2.GetPublicKeyRequest())
    assert key.verifier_key == server.broker.signer.verifier_key()
    assert key.origin == "orbitq.test/ledger"
    assert key.public_key == server.broker.signer.verifier().public_key_raw
    latest = tenant.GetCheckpoint(ledger_pb2.GetCheckpointRequest()).checkpoint
    checkpoint = verify_checkpoint(latest.note, key.verifier_key)
    assert (checkpoint.size, checkpoint.root_hash) == (latest.size, latest.root_hash)
    assert latest.size == history.checkpoint.size == server.broker.store.head().size
    # Any authenticated role reads the log; only operators sign on demand.
    with pytest.raises(grpc.RpcError) as denied:
        tenant.GetCheckpoint(ledger_pb2.GetCheckpointRequest(fresh=True))
    assert status_of(denied) is grpc.StatusCode.PERMISSION_DENIED
    with BrokerClient(server.target, history.acme_key) as acme:
        acme.transfer("globex", cpu=1)
    operator = Ledger(channel, server.operator_key)
    fresh = operator.GetCheckpoint(ledger_pb2.GetCheckpointRequest(fresh=True)).checkpoint
    assert fresh.size == server.broker.store.head().size > latest.size


def test_unauthenticated_calls_are_refused(channel: grpc.Channel, server: ServerHandle) -> None:
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    with pytest.raises(grpc.RpcError) as refused:
        stub.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=10)
    assert status_of(refused) is grpc.StatusCode.UNAUTHENTICATED


def test_get_entries_pages_through_the_log(
    server: ServerHandle, history: History, channel: grpc.Channel
) -> None:
    ledger = Ledger(channel, history.acme_key)
    size = history.checkpoint.size
    collected: list[bytes] = []
    start = 0
    while True:
        page = ledger.GetEntries(ledger_pb2.GetEntriesRequest(start=start, page_size=7))
        assert len(page.entries) <= 7
        assert [e.index for e in page.entries] == list(range(start, start + len(page.entries)))
        collected.extend(e.data for e in page.entries)
        if page.next_start == 0:
            break
        start = page.next_start
    assert len(collected) == size  # end 0 = the latest checkpoint's size
    assert root_of([leaf_hash(data) for data in collected]) == history.checkpoint.root_hash
    # A page is at most 1000 entries; an explicit end bounds it; an empty range is empty.
    page = ledger.GetEntries(ledger_pb2.GetEntriesRequest(start=2, end=5, page_size=5000))
    assert [e.index for e in page.entries] == [2, 3, 4]
    assert page.next_start == 0
    assert not ledger.GetEntries(ledger_pb2.GetEntriesRequest(start=3, end=3)).entries


def test_get_entries_rejects_bad_ranges(history: History, channel: grpc.Channel) -> None:
    ledger = Ledger(channel, history.acme_key)
    size = history.checkpoint.size
    for request, message in (
        (ledger_pb2.GetEntriesRequest(start=5, end=3), "after end"),
        (ledger_pb2.GetEntriesRequest(start=size + 1), "after end"),
        (ledger_pb2.GetEntriesRequest(start=0, end=size + 10), "beyond the log"),
        (ledger_pb2.GetEntriesRequest(start=0, end=2**64 - 1), "end = 18446744073709551615 is"),
    ):
        with pytest.raises(grpc.RpcError) as bad:
            ledger.GetEntries(request)
        assert status_of(bad) is grpc.StatusCode.INVALID_ARGUMENT
        assert message in details_of(bad)


def test_inclusion_proofs_by_index_and_by_transfer(
    server: ServerHandle, history: History, channel: grpc.Channel
) -> None:
    ledger = Ledger(channel, history.acme_key)
    size = history.checkpoint.size
    for index in (0, 5, size - 1):
        proof = ledger.GetInclusionProof(ledger_pb2.GetInclusionProofRequest(index=index))
        assert (proof.index, proof.tree_size, proof.checkpoint.size) == (index, size, size)
        verify_inclusion(
            leaf_hash(proof.entry), index, size, list(proof.hashes), proof.checkpoint.root_hash
        )
    post = history.transfers["post"]
    stored = server.broker.store.transfer(post)
    assert stored is not None
    proof = ledger.GetInclusionProof(
        ledger_pb2.GetInclusionProofRequest(transfer_id=post.to_bytes(16, "big"))
    )
    assert proof.index == stored.entry_index
    parsed = ledger_pb2.LedgerEntry.FromString(proof.entry)
    assert parsed.transfer_recorded.transfer.id == post.to_bytes(16, "big")
    # An older checkpoint by its exact size: the proof is for that tree.
    first = next(iter(server.broker.store.checkpoints()))
    old = ledger.GetInclusionProof(
        ledger_pb2.GetInclusionProofRequest(index=1, tree_size=first.size)
    )
    assert old.tree_size == old.checkpoint.size == first.size
    verify_inclusion(leaf_hash(old.entry), 1, first.size, list(old.hashes), first.root_hash)


def test_inclusion_proof_bad_input(
    server: ServerHandle, history: History, channel: grpc.Channel
) -> None:
    ledger = Ledger(channel, history.acme_key)
    size = history.checkpoint.size
    first = next(iter(server.broker.store.checkpoints())).size
    cases = [
        (ledger_pb2.GetInclusionProofRequest(), grpc.StatusCode.INVALID_ARGUMENT, "index or"),
        (
            ledger_pb2.GetInclusionProofRequest(transfer_id=b"short"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "16 bytes",
        ),
        (
            ledger_pb2.GetInclusionProofRequest(transfer_id=new_id().to_bytes(16, "big")),
            grpc.StatusCode.NOT_FOUND,
            "no transfer with id",
        ),
        (
            ledger_pb2.GetInclusionProofRequest(index=size + 100),
            grpc.StatusCode.INVALID_ARGUMENT,
            "beyond the log",
        ),
        (
            ledger_pb2.GetInclusionProofRequest(index=2**64 - 1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "index = 18446744073709551615 is above the maximum",
        ),
        (
            ledger_pb2.GetInclusionProofRequest(index=0, tree_size=first + 1),
            grpc.StatusCode.NOT_FOUND,
            f"nearest checkpoints have sizes {first} and {size}",
        ),
        (
            ledger_pb2.GetInclusionProofRequest(index=0, tree_size=2**64 - 1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "tree_size = 18446744073709551615 is above the maximum",
        ),
        (
            ledger_pb2.GetInclusionProofRequest(index=size - 1, tree_size=first),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"not in the tree of size {first}",
        ),
    ]
    for request, code, message in cases:
        with pytest.raises(grpc.RpcError) as bad:
            ledger.GetInclusionProof(request)
        assert status_of(bad) is code, request
        assert message in details_of(bad)
    # Committed but not yet under a checkpoint: retry later.
    with BrokerClient(server.target, history.acme_key) as acme:
        acme.transfer("globex", cpu=1)
    with pytest.raises(grpc.RpcError) as pending:
        ledger.GetInclusionProof(ledger_pb2.GetInclusionProofRequest(index=size))
    assert status_of(pending) is grpc.StatusCode.FAILED_PRECONDITION
    assert "not covered by the latest checkpoint" in details_of(pending)


def test_consistency_proofs_and_bad_sizes(
    server: ServerHandle, history: History, channel: grpc.Channel
) -> None:
    ledger = Ledger(channel, history.acme_key)
    checkpoints = list(server.broker.store.checkpoints())
    assert len(checkpoints) >= 2
    first, latest = checkpoints[0], checkpoints[-1]
    proof = ledger.GetConsistencyProof(ledger_pb2.GetConsistencyProofRequest(from_size=first.size))
    assert (proof.from_size, proof.to_size, proof.checkpoint.size) == (
        first.size,
        latest.size,
        latest.size,
    )
    verify_consistency(
        first.size, latest.size, list(proof.hashes), first.root_hash, latest.root_hash
    )
    # from any size, not only a checkpoint's; to an older checkpoint by its size
    proof = ledger.GetConsistencyProof(
        ledger_pb2.GetConsistencyProofRequest(from_size=3, to_size=first.size)
    )
    assert proof.to_size == first.size
    same = ledger.GetConsistencyProof(
        ledger_pb2.GetConsistencyProofRequest(from_size=latest.size, to_size=latest.size)
    )
    assert list(same.hashes) == []
    cases = [
        (ledger_pb2.GetConsistencyProofRequest(), grpc.StatusCode.INVALID_ARGUMENT, "> 0"),
        (
            ledger_pb2.GetConsistencyProofRequest(from_size=latest.size + 1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "larger than to_size",
        ),
        (
            ledger_pb2.GetConsistencyProofRequest(from_size=first.size + 1, to_size=first.size),
            grpc.StatusCode.INVALID_ARGUMENT,
            "larger than to_size",
        ),
        (
            ledger_pb2.GetConsistencyProofRequest(from_size=1, to_size=latest.size - 1),
            grpc.StatusCode.NOT_FOUND,
            "no checkpoint of tree size",
        ),
    ]
    for request, code, message in cases:
        with pytest.raises(grpc.RpcError) as bad:
            ledger.GetConsistencyProof(request)
        assert status_of(bad) is code, request
        assert message in details_of(bad)


def test_the_log_is_empty_root_before_anything(server: ServerHandle) -> None:
    # Sanity: the log of a fresh broker already has the system accounts, signed at init.
    checkpoint = server.broker.store.latest_checkpoint()
    assert checkpoint is not None
    assert checkpoint.size > 0
    assert checkpoint.root_hash != EMPTY_ROOT
