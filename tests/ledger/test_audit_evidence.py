"""The audit's evidence rules (V15-V18) on a real database, SQLite and PostgreSQL: the evidence
behind every receipt-backed charge is checked, and each way of breaking it names the entry.

The store records whatever evidence the broker hands it (the broker checks receipts before it
settles); so bad evidence is made here either through the store, as a broker with a bug would,
or by tampering with the database, as an attacker with write access would — some with the
signing key too (entries rewritten, hashes recomputed, the checkpoint re-signed), so that only
the evidence rules can tell.
"""

from __future__ import annotations

import pytest

from orbitq.ledger import EntryIntegrityError
from orbitq.ledger.audit import AuditReport, audit_store
from orbitq.ledger.entries import NodeKeyEvidence, ReceiptEvidence, encode_evidence
from orbitq.ledger.model import Code, Kind, Transfer
from orbitq.ledger.receipts import receipt_digest
from orbitq.v1 import ledger_pb2
from tests.ledger.agent_formats import NODE, RATE, RUNTIME, Key
from tests.ledger.evidence_history import CHARGED, REQUEST, EvidenceLedger

OTHER = "00112233445566778899aabbccddeeff"


def audit(ledger: EvidenceLedger) -> AuditReport:
    ledger.checkpoint()
    return audit_store(ledger.store, ledger.signer.verifier())


def failure(ledger: EvidenceLedger) -> EntryIntegrityError:
    with pytest.raises(EntryIntegrityError) as caught:
        audit(ledger)
    return caught.value


def receipt_entry(ledger: EvidenceLedger) -> int:
    found = ledger.store.receipt_of(REQUEST)
    assert found is not None
    return found.entry_index


def node_key_entry(ledger: EvidenceLedger) -> int:
    found = ledger.store.node_key(NODE)
    assert found is not None
    return found.entry_index


def test_the_clean_ledger_passes(evidence_ledger: EvidenceLedger) -> None:
    report = audit(evidence_ledger)
    assert (report.node_keys, report.receipts) == (1, 1)


# -- V15, V18: tampering with the database ----------------------------------------------------


def test_a_flipped_byte_in_an_evidence_entry_names_it(evidence_ledger: EvidenceLedger) -> None:
    ledger = evidence_ledger
    index = receipt_entry(ledger)
    data = bytearray(ledger.entry(index))
    data[-10] ^= 0x01
    ledger.sql("UPDATE ledger_entries SET data = ? WHERE idx = ?", bytes(data), index)
    error = failure(ledger)
    assert error.index == index
    assert "leaf hash differs" in error.detail


def test_a_swapped_receipt_signed_by_another_key_names_its_entry(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    index = receipt_entry(ledger)
    forged = ledger.receipt(Key.from_seed(NODE, 99))
    ledger.rewrite({index: encode_evidence(index, _ts(ledger, index), _receipt(forged))})
    ledger.sql(
        "UPDATE ledger_evidence SET digest = ? WHERE entry_index = ?", _digest(forged), index
    )
    error = failure(ledger)
    assert error.index == index
    assert "does not verify under node starlink-31234's key" in error.detail
    assert "unknown_key" in error.detail


def test_a_swapped_receipt_of_the_node_itself_is_caught_at_the_settlement(
    evidence_ledger: EvidenceLedger,
) -> None:
    """A validly signed receipt of the same node, swapped in with its row: the settlements
    still carry the digest of the receipt they were made against."""
    ledger = evidence_ledger
    index = receipt_entry(ledger)
    other = ledger.receipt(fuel=1, cpu_core_seconds=1)
    ledger.rewrite({index: encode_evidence(index, _ts(ledger, index), _receipt(other))})
    ledger.sql("UPDATE ledger_evidence SET digest = ? WHERE entry_index = ?", _digest(other), index)
    error = failure(ledger)
    assert error.index == index + 1
    assert "no earlier ReceiptRecorded entry has that digest" in error.detail


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("digest", bytes(32), "digest " + "00" * 32),
        ("kind", 1, "kind 1"),
        ("node", "elsewhere", "node elsewhere"),
        ("request_id", OTHER, "request_id " + OTHER),
    ],
)
def test_an_altered_evidence_row_names_its_entry(
    evidence_ledger: EvidenceLedger, column: str, value: object, shown: str
) -> None:
    ledger = evidence_ledger
    index = receipt_entry(ledger)
    ledger.sql(f"UPDATE ledger_evidence SET {column} = ? WHERE entry_index = ?", value, index)
    error = failure(ledger)
    assert error.index == index
    assert f"its evidence row says {shown}" in error.detail


def test_a_missing_evidence_row_names_its_entry(evidence_ledger: EvidenceLedger) -> None:
    ledger = evidence_ledger
    index = node_key_entry(ledger)
    ledger.sql("DELETE FROM ledger_evidence WHERE entry_index = ?", index)
    error = failure(ledger)
    assert error.index == index
    assert "has no evidence row" in error.detail


@pytest.mark.parametrize("where", ["a transfer entry", "beyond the log"])
def test_an_evidence_row_without_its_entry_is_named(
    evidence_ledger: EvidenceLedger, where: str
) -> None:
    ledger = evidence_ledger
    index = receipt_entry(ledger) + 1 if where == "a transfer entry" else 10_000
    ledger.sql(
        "INSERT INTO ledger_evidence (entry_index, digest, kind, node, request_id)"
        " VALUES (?, ?, ?, ?, ?)",
        index,
        bytes(32),
        2,
        NODE,
        OTHER,
    )
    error = failure(ledger)
    assert error.index == index
    assert "the entry records no evidence" in error.detail


def test_a_node_key_entry_with_a_wrong_key_id_is_malformed(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    index = node_key_entry(ledger)
    entry = ledger_pb2.LedgerEntry.FromString(ledger.entry(index))
    entry.node_key_enrolled.key_id = b"\x00\x00\x00\x00"
    ledger.rewrite({index: entry.SerializeToString(deterministic=True)})
    error = failure(ledger)
    assert error.index == index
    assert "its evidence is malformed" in error.detail
    assert "key id 00000000" in error.detail


# -- V15-V17: bad evidence recorded through the store -----------------------------------------


def test_a_receipt_under_a_rotated_out_key_names_its_entry(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    ledger.enroll(Key.from_seed(NODE, 9))
    stale = ledger.receipt(request_id=OTHER)  # signed with the key of the first enrollment
    index = ledger.store.record_evidence(_receipt(stale, OTHER), ledger.now()).entry_index
    error = failure(ledger)
    assert error.index == index
    assert "unknown_key" in error.detail


def test_a_receipt_of_a_node_with_no_key_names_its_entry(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    stranger = Key.from_seed("elsewhere", 5)
    envelope = ledger.receipt(stranger, node="elsewhere", request_id=OTHER)
    evidence = ReceiptEvidence(OTHER, "elsewhere", envelope)
    index = ledger.store.record_evidence(evidence, ledger.now()).entry_index
    error = failure(ledger)
    assert error.index == index
    assert "no NodeKeyEnrolled entry of that node comes before it" in error.detail


def test_a_receipt_recorded_for_another_request_names_its_entry(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    envelope = ledger.receipt(request_id=OTHER)
    index = ledger.store.record_evidence(_receipt(envelope, "ab" * 16), ledger.now()).entry_index
    error = failure(ledger)
    assert error.index == index
    assert f"but the receipt is for request {OTHER}" in error.detail


def test_core_seconds_must_follow_the_enrolled_rate(evidence_ledger: EvidenceLedger) -> None:
    ledger = evidence_ledger
    envelope = ledger.receipt(request_id=OTHER, fuel=RATE + 1, cpu_core_seconds=1)
    index = ledger.store.record_evidence(_receipt(envelope, OTHER), ledger.now()).entry_index
    error = failure(ledger)
    assert error.index == index
    assert f"claims 1 core-seconds for fuel {RATE + 1}" in error.detail
    assert "that is 2" in error.detail


def test_the_rate_is_the_one_in_force_at_the_receipt(evidence_ledger: EvidenceLedger) -> None:
    """Re-enrolled at half the rate, the same fuel is twice the core-seconds."""
    ledger = evidence_ledger
    key = Key.from_seed(NODE, 9)
    ledger.store.record_evidence(
        NodeKeyEvidence(NODE, key.public, RATE // 2, RUNTIME), ledger.now()
    )
    envelope = ledger.receipt(key, request_id=OTHER, fuel=RATE, cpu_core_seconds=2)
    ledger.store.record_evidence(_receipt(envelope, OTHER), ledger.now())
    assert audit(ledger).receipts == 2


def test_a_settlement_beyond_the_receipts_charge_names_the_transfer(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    pending = ledger.reserve(OTHER)
    envelope = ledger.receipt(request_id=OTHER)
    amounts = CHARGED | {Kind.STORAGE: CHARGED[Kind.STORAGE] + 1}
    entry, outcomes, _ = ledger.settle(envelope, pending, request_id=OTHER, amounts=amounts)
    assert all(o.ok for o in outcomes)
    error = failure(ledger)
    assert error.index == entry + 2  # cpu, then storage
    assert f"{CHARGED[Kind.STORAGE] + 1} storage is settled against receipt" in error.detail
    assert f"which backs {CHARGED[Kind.STORAGE]}" in error.detail


def test_settlements_add_up_per_kind(evidence_ledger: EvidenceLedger) -> None:
    """A second settle transfer against the same receipt counts with the first."""
    ledger = evidence_ledger
    digest = receipt_digest(ledger.receipt())
    acme, consumed = ledger.accounts[("acme", Kind.LINK)], ledger.accounts[("escrow", Kind.LINK)]
    extra = Transfer(9_999, acme, consumed, 1, user_data=digest, kind=3, code=int(Code.SETTLE))
    assert all(o.ok for o in ledger.store.create_transfers([extra], ledger.now()))
    error = failure(ledger)
    assert f"{CHARGED[Kind.LINK] + 1} link is settled" in error.detail


def test_a_settlement_without_its_receipt_names_the_transfer(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    acme, escrow = ledger.accounts[("acme", Kind.CPU)], ledger.accounts[("escrow", Kind.CPU)]
    orphan = Transfer(9_998, acme, escrow, 1, user_data=bytes(32), kind=1, code=int(Code.SETTLE))
    size = ledger.store.head().size
    assert all(o.ok for o in ledger.store.create_transfers([orphan], ledger.now()))
    error = failure(ledger)
    assert error.index == size
    assert f"settles against receipt {'00' * 32}" in error.detail


def test_other_settlements_need_no_receipt(evidence_ledger: EvidenceLedger) -> None:
    """Only `settle` transfers with a 32-byte user_data claim a receipt: the plan-mode
    settlement carries the 16-byte request id."""
    ledger = evidence_ledger
    acme, escrow = ledger.accounts[("acme", Kind.CPU)], ledger.accounts[("escrow", Kind.CPU)]
    plan = Transfer(9_997, acme, escrow, 1, user_data=bytes(16), kind=1, code=int(Code.SETTLE))
    other = Transfer(9_996, acme, escrow, 1, user_data=bytes(32), kind=1, code=int(Code.TRANSFER))
    assert all(o.ok for o in ledger.store.create_transfers([plan, other], ledger.now()))
    assert audit(ledger).receipts == 1


def test_a_receipt_recorded_twice_is_caught(evidence_ledger: EvidenceLedger) -> None:
    """The store never appends a receipt twice; an entry forged to do so is named."""
    ledger = evidence_ledger
    key = Key.from_seed(NODE, 9)
    extra = ledger.store.record_evidence(
        NodeKeyEvidence(NODE, key.public, RATE, RUNTIME), ledger.now()
    ).entry_index
    index = receipt_entry(ledger)
    duplicate = encode_evidence(extra, _ts(ledger, extra), _receipt(ledger.receipt()))
    ledger.rewrite({extra: duplicate})
    ledger.sql(
        "UPDATE ledger_evidence SET kind = 2, digest = ?, request_id = ? WHERE entry_index = ?",
        receipt_digest(ledger.receipt()),
        REQUEST,
        extra,
    )
    error = failure(ledger)
    assert error.index == extra
    assert f"entry {index} recorded it" in error.detail


def _receipt(envelope: bytes, request_id: str = REQUEST) -> ReceiptEvidence:
    return ReceiptEvidence(request_id, NODE, envelope)


def _digest(envelope: bytes) -> bytes:
    return receipt_digest(envelope)


def _ts(ledger: EvidenceLedger, index: int) -> int:
    return ledger_pb2.LedgerEntry.FromString(ledger.entry(index)).timestamp_ns
