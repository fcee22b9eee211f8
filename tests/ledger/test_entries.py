"""Leaf encoding: the in-place encoder writes exactly the bytes of the plain keyword-built
messages (deterministic serialization), and decoding gives back what was encoded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orbitq.ledger.entries import decode_entry, encode_transfer_recorded
from orbitq.ledger.model import Result, StoredTransfer, Transfer, TransferFlag, id_to_bytes
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
