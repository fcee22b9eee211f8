"""Leaf encoding: the in-place encoder writes exactly the bytes of the plain keyword-built
messages (deterministic serialization), and decoding gives back what was encoded."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitq.ledger.entries import (
    EvidenceKind,
    NodeKeyEvidence,
    ReceiptEvidence,
    decode_entry,
    encode_evidence,
    encode_transfer_recorded,
    evidence_of,
)
from orbitq.ledger.model import Result, StoredTransfer, Transfer, TransferFlag, id_to_bytes
from orbitq.ledger.note import key_id
from orbitq.v1 import ledger_pb2, quota_pb2

u64 = st.integers(min_value=0, max_value=2**63 - 1)
ids = st.integers(min_value=1, max_value=2**128 - 2)


def reference_encoding(index: int, stored: StoredTransfer) -> bytes:
    """The obvious construction, kept as the reference the fast encoder must equal."""
    t = stored.transfer
    flags = t.flags
    message = quota_pb2.Transfer(
        id=id_to_bytes(t.id),
        debit_account_id=t.debit_account_id,
        credit_account_id=t.credit_account_id,
        amount=t.amount,
        pending_id=id_to_bytes(t.pending_id) if t.pending_id else b"",
        user_data=t.user_data,
        kind=t.kind,  # type: ignore[arg-type]
        code=t.code,  # type: ignore[arg-type]
        flags=quota_pb2.TransferFlags(
            linked=bool(flags & TransferFlag.LINKED),
            pending=bool(flags & TransferFlag.PENDING),
            post_pending=bool(flags & TransferFlag.POST_PENDING),
            void_pending=bool(flags & TransferFlag.VOID_PENDING),
        ),
        timeout_seconds=t.timeout_seconds,
        timestamp_ns=t.timestamp_ns,
    )
    entry = ledger_pb2.LedgerEntry(
        index=index,
        timestamp_ns=t.timestamp_ns,
        transfer_recorded=ledger_pb2.TransferRecorded(
            transfer=message,
            result=int(stored.result),  # type: ignore[arg-type]
        ),
    )
    return entry.SerializeToString(deterministic=True)


transfers = st.builds(
    Transfer,
    id=ids,
    debit_account_id=u64,
    credit_account_id=u64,
    amount=u64,
    pending_id=st.one_of(st.just(0), ids),
    user_data=st.binary(max_size=32),
    kind=st.integers(min_value=0, max_value=3),
    code=st.integers(min_value=0, max_value=9),
    flags=st.integers(min_value=0, max_value=15),
    timeout_seconds=st.integers(min_value=0, max_value=2**32 - 1),
    timestamp_ns=u64,
)


@given(
    index=u64,
    transfer=transfers,
    result=st.sampled_from(list(Result)),
)
def test_fast_encoding_equals_the_reference(index: int, transfer: Transfer, result: Result) -> None:
    stored = StoredTransfer(transfer, result)
    data = encode_transfer_recorded(index, stored)
    assert data == reference_encoding(index, stored)
    decoded = decode_entry(data)
    assert decoded.index == index
    assert decoded.transfer == transfer
    assert decoded.result is result


# Values the direct wire encoder leaves to protobuf (orbitq.ledger._transfer_wire): enums that
# are not one-byte varints (negative ones are ten), and the edges of the uint64/uint32 fields.
wide_transfers = st.builds(
    Transfer,
    id=ids,
    debit_account_id=st.sampled_from([0, 1, 127, 128, 2**63, 2**64 - 1]),
    credit_account_id=st.sampled_from([0, 0x3FFF, 0x4000, 2**64 - 1]),
    amount=st.sampled_from([0, 1, 2**56, 2**64 - 1]),
    pending_id=st.one_of(st.just(0), ids),
    user_data=st.binary(max_size=32),
    kind=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    code=st.one_of(st.integers(min_value=-(2**31), max_value=2**31 - 1), st.just(127)),
    flags=st.integers(min_value=0, max_value=2**16),
    timeout_seconds=st.sampled_from([0, 1, 2**32 - 1]),
    timestamp_ns=st.sampled_from([0, 1, 2**64 - 1]),
)


@given(index=st.sampled_from([0, 1, 2**64 - 1]), transfer=wide_transfers)
def test_fast_encoding_equals_the_reference_at_the_edges(index: int, transfer: Transfer) -> None:
    stored = StoredTransfer(transfer, Result.EXCEEDS_CREDITS)
    assert encode_transfer_recorded(index, stored) == reference_encoding(index, stored)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("debit_account_id", 2**64),
        ("amount", -1),
        ("timeout_seconds", 2**32),
        ("timestamp_ns", 2**64),
    ],
)
def test_values_outside_the_fields_fail_as_protobuf_fails(field: str, value: int) -> None:
    stored = StoredTransfer(Transfer(id=1, **{field: value}), Result.OK)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        reference_encoding(0, stored)
    with pytest.raises(ValueError, match="out of range"):
        encode_transfer_recorded(0, stored)


# -- evidence (E5) ---------------------------------------------------------------------------

node_keys = st.builds(
    NodeKeyEvidence,
    node=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64),
    public_key=st.binary(min_size=32, max_size=32),
    fuel_per_core_second=st.integers(1, 2**63 - 1),
    runtime=st.sampled_from(["wasmtime 51.0.0", "wasmtime 52.0.1"]),
)
receipts = st.builds(
    ReceiptEvidence,
    request_id=st.binary(min_size=16, max_size=16).map(bytes.hex),
    node=st.sampled_from(["starlink-31234", "n"]),
    receipt=st.binary(min_size=1, max_size=400),
)


@given(index=u64, timestamp_ns=u64, evidence=st.one_of(node_keys, receipts))
def test_evidence_entries_round_trip(
    index: int, timestamp_ns: int, evidence: NodeKeyEvidence | ReceiptEvidence
) -> None:
    data = encode_evidence(index, timestamp_ns, evidence)
    entry = ledger_pb2.LedgerEntry.FromString(data)
    assert entry.SerializeToString(deterministic=True) == data
    decoded = decode_entry(data)
    assert (decoded.index, decoded.timestamp_ns, decoded.evidence) == (
        index,
        timestamp_ns,
        evidence,
    )
    assert decoded.account is None
    assert decoded.transfer is None


def test_the_digests_of_evidence() -> None:
    key = NodeKeyEvidence("starlink-31234", bytes(range(32)), 15_000_000_000, "wasmtime 51.0.0")
    message = ledger_pb2.NodeKeyEnrolled(
        node="starlink-31234",
        public_key=bytes(range(32)),
        key_id=key_id("starlink-31234", bytes(range(32))),
        fuel_per_core_second=15_000_000_000,
        runtime="wasmtime 51.0.0",
    )
    assert key.digest() == hashlib.sha256(message.SerializeToString(deterministic=True)).digest()
    assert key.key_id == message.key_id
    receipt = ReceiptEvidence("0f" * 16, "starlink-31234", b"\xd2\x84")
    assert receipt.digest() == hashlib.sha256(b"\xd2\x84").digest()
    assert (key.kind, receipt.kind) == (EvidenceKind.NODE_KEY, EvidenceKind.RECEIPT)


def test_a_node_key_entry_must_carry_the_key_id_of_its_key() -> None:
    key = NodeKeyEvidence("n", bytes(32), 1, "wasmtime 51.0.0")
    entry = ledger_pb2.LedgerEntry.FromString(encode_evidence(3, 4, key))
    entry.node_key_enrolled.key_id = b"abcd"
    with pytest.raises(ValueError, match="key id 61626364"):
        decode_entry(entry.SerializeToString(deterministic=True))
    entry.node_key_enrolled.key_id = key.key_id
    entry.node_key_enrolled.public_key = b"short"
    with pytest.raises(ValueError, match="public_key must be 32 bytes"):
        evidence_of(entry)
    assert evidence_of(ledger_pb2.LedgerEntry()) is None
