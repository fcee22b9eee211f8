"""Evidence in the stored log (E5): node keys and receipts appended at most once, a receipt's
entry before the transfers that settle against it in one transaction, retries answered with
the existing entry, and the reads by digest, node and request. SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from itertools import count

import pytest

from orbitq.ledger.audit import audit_store
from orbitq.ledger.entries import NodeKeyEvidence, ReceiptEvidence, decode_entry
from orbitq.ledger.model import Kind, Result
from orbitq.ledger.receipts import receipt_digest
from orbitq.ledger.store import (
    CreateTransfers,
    EvidenceRecorded,
    GroupCommitWriter,
    LedgerStore,
    Outcomes,
    RecordEvidence,
)
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate
from tests.ledger.agent_formats import NODE, RATE, RUNTIME, Key
from tests.ledger.evidence_history import REQUEST, EvidenceLedger

OTHER_REQUEST = "00112233445566778899aabbccddeeff"


def head(ledger: EvidenceLedger) -> int:
    return ledger.store.head().size


def test_the_history_audits_clean(evidence_ledger: EvidenceLedger) -> None:
    report = audit_store(evidence_ledger.store, evidence_ledger.signer.verifier())
    assert (report.node_keys, report.receipts) == (1, 1)


def test_a_node_key_is_appended_once_and_a_retry_gets_its_entry(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    key = Key.from_seed(NODE, 9)
    evidence = NodeKeyEvidence(NODE, key.public, RATE, RUNTIME)
    size = head(ledger)
    first = ledger.store.record_evidence(evidence, ledger.now())
    assert first == EvidenceRecorded(size, evidence.digest(), new=True)
    again = ledger.store.record_evidence(evidence, ledger.now())
    assert again == EvidenceRecorded(size, evidence.digest(), new=False)
    assert head(ledger) == size + 1
    decoded = decode_entry(ledger.entry(size))
    assert decoded.evidence == evidence
    assert ledger.store.node_key(NODE) is not None
    stored = ledger.store.node_key(NODE)
    assert stored is not None
    assert (stored.entry_index, stored.evidence) == (size, evidence)


def test_a_key_enrolled_again_after_another_is_a_new_entry(
    evidence_ledger: EvidenceLedger,
) -> None:
    """A -> B -> A: the third enrollment is no retry; from its entry on, A is in force again."""
    ledger = evidence_ledger
    first = ledger.store.node_key(NODE)
    assert first is not None
    other = ledger.enroll(Key.from_seed(NODE, 9))
    back = ledger.store.record_evidence(first.evidence, ledger.now())
    assert back.new
    assert back.entry_index > other > first.entry_index
    assert back.digest == first.digest
    found = ledger.store.node_key(NODE)
    assert found is not None
    assert found.entry_index == back.entry_index
    before = ledger.store.node_key(NODE, before=back.entry_index)
    assert before is not None
    assert before.entry_index == other
    assert ledger.store.evidence(first.digest) is not None
    latest = ledger.store.evidence(first.digest)
    assert latest is not None
    assert latest.entry_index == back.entry_index
    audit_store(ledger.store, ledger.signer.verifier())


def test_a_receipt_comes_before_its_settlement_in_one_transaction(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    pending = ledger.reserve(OTHER_REQUEST)
    envelope = ledger.receipt(request_id=OTHER_REQUEST)
    size = head(ledger)
    entry, outcomes, ids = ledger.settle(envelope, pending, request_id=OTHER_REQUEST)
    assert [o.result for o in outcomes] == [Result.OK] * 3
    assert entry == size
    assert head(ledger) == size + 4
    posts = [ledger.store.transfer(transfer_id) for transfer_id in ids]
    stored = [post for post in posts if post is not None]
    assert [post.entry_index for post in stored] == [size + 1, size + 2, size + 3]
    assert {post.transfer.user_data for post in stored} == {receipt_digest(envelope)}
    recorded = ledger.store.receipt_of(OTHER_REQUEST)
    assert recorded is not None
    assert recorded.entry_index == entry
    assert recorded.evidence == ReceiptEvidence(OTHER_REQUEST, NODE, envelope)
    assert recorded.digest == receipt_digest(envelope)
    # A retry of the whole item: the same entry, the transfers EXISTS, nothing appended.
    again = ledger.store.create_transfers(
        [replace(post.transfer, timestamp_ns=0) for post in stored],
        ledger.now(),
        evidence=ReceiptEvidence(OTHER_REQUEST, NODE, envelope),
    )
    assert again.evidence == EvidenceRecorded(entry, receipt_digest(envelope), new=False)
    assert [o.result for o in again] == [Result.EXISTS] * 3
    assert head(ledger) == size + 4
    audit_store(ledger.store, ledger.signer.verifier())


def test_evidence_recorded_even_when_its_transfers_fail(evidence_ledger: EvidenceLedger) -> None:
    ledger = evidence_ledger
    envelope = ledger.receipt(request_id=OTHER_REQUEST)
    entry, outcomes, _ = ledger.settle(
        envelope, dict.fromkeys(Kind, 999_999), request_id=OTHER_REQUEST
    )
    assert outcomes[0].result is Result.PENDING_TRANSFER_NOT_FOUND
    assert ledger.store.receipt_of(OTHER_REQUEST) is not None
    assert decode_entry(ledger.entry(entry)).evidence is not None


def test_retries_within_one_group_get_the_same_entry(evidence_ledger: EvidenceLedger) -> None:
    ledger = evidence_ledger
    key = Key.from_seed(NODE, 9)
    node_key = NodeKeyEvidence(NODE, key.public, RATE, RUNTIME)
    receipt = ReceiptEvidence(OTHER_REQUEST, NODE, ledger.receipt(request_id=OTHER_REQUEST))
    size = head(ledger)
    results = ledger.store.write(
        [
            RecordEvidence(node_key),
            CreateTransfers((), receipt),
            RecordEvidence(receipt),
            RecordEvidence(node_key),
        ],
        ledger.now(),
    )
    assert results == [
        [EvidenceRecorded(size, node_key.digest(), new=True)],
        [],
        [EvidenceRecorded(size + 1, receipt.digest(), new=False)],
        [EvidenceRecorded(size, node_key.digest(), new=False)],
    ]
    assert isinstance(results[1], Outcomes)
    assert results[1].evidence == EvidenceRecorded(size + 1, receipt.digest(), new=True)
    assert head(ledger) == size + 2
    assert [row[0] for row in ledger.evidence_rows()][-2:] == [size, size + 1]


def test_a_key_rotated_within_a_group_and_back_is_appended_each_time(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    current = ledger.store.node_key(NODE)
    assert current is not None
    other = NodeKeyEvidence(NODE, Key.from_seed(NODE, 9).public, RATE, RUNTIME)
    size = head(ledger)
    results = ledger.store.write(
        [RecordEvidence(current.evidence), RecordEvidence(other), RecordEvidence(current.evidence)],
        ledger.now(),
    )
    assert [r[0].entry_index for r in results] == [current.entry_index, size, size + 1]  # type: ignore[union-attr]
    audit_store(ledger.store, ledger.signer.verifier())


def test_unknown_evidence_reads_none(evidence_ledger: EvidenceLedger) -> None:
    store = evidence_ledger.store
    assert store.evidence(bytes(32)) is None
    assert store.node_key("nobody") is None
    assert store.receipt_of(OTHER_REQUEST) is None
    first = store.node_key(NODE)
    assert first is not None
    assert store.node_key(NODE, before=first.entry_index) is None


def test_the_group_commit_writer_returns_where_the_evidence_is(
    evidence_ledger: EvidenceLedger,
) -> None:
    ledger = evidence_ledger
    writer = GroupCommitWriter(ledger.store, ledger.now)
    writer.start()
    try:
        key = NodeKeyEvidence(NODE, Key.from_seed(NODE, 9).public, RATE, RUNTIME)
        size = head(ledger)
        assert writer.apply(RecordEvidence(key)) == [EvidenceRecorded(size, key.digest(), True)]
        pending = ledger.reserve(OTHER_REQUEST)
        evidence = ReceiptEvidence(OTHER_REQUEST, NODE, ledger.receipt(request_id=OTHER_REQUEST))
        result = writer.apply(CreateTransfers((), evidence))
        assert isinstance(result, Outcomes)
        assert result.evidence is not None
        assert result.evidence.entry_index == size + 4  # after the key and 3 reservations
        assert pending
    finally:
        writer.stop()


def test_a_store_without_a_log_refuses_evidence(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        migrate(engine)
        store = LedgerStore(engine, log=False)
        clock = count(1_764_979_200_000_000_000)
        store.initialize(next(clock))
        evidence = NodeKeyEvidence(NODE, Key.from_seed(NODE, 9).public, RATE, RUNTIME)
        with pytest.raises(ValueError, match="signed log"):
            store.record_evidence(evidence, next(clock))
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: NodeKeyEvidence(NODE, b"short", RATE, RUNTIME), "public_key must be 32 bytes"),
        (lambda: NodeKeyEvidence(NODE, bytes(32), 0, RUNTIME), "must be positive"),
        (lambda: NodeKeyEvidence("", bytes(32), RATE, RUNTIME), "node must be 1..64"),
        (lambda: ReceiptEvidence("xyz", NODE, b"r"), "32 lower-case hex"),
        (lambda: ReceiptEvidence(REQUEST, NODE, b""), "receipt must be 1..8192"),
    ],
)
def test_invalid_evidence_cannot_be_made(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
