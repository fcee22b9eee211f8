"""The audit's rules one by one (V1-V14), on a small ledger read into lists.

The ledger is made by the real store, then forged the way an attacker holding the signing key
would: entries re-encoded, every stored hash recomputed, transfer rows updated to match and the
checkpoint re-signed, so that each test reaches the one rule it is about.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbitq.ledger import (
    AccountIntegrityError,
    CheckpointIntegrityError,
    EntryIntegrityError,
    Frontier,
    InvariantViolationError,
    Signer,
    sign_checkpoint,
)
from orbitq.ledger.audit import AuditReport, audit_log
from orbitq.ledger.audit import _check_invariants as check_invariants
from orbitq.ledger.checkpoint_chain import ChainLink, body_hash, chain_line
from orbitq.ledger.entries import decode_entry, encode_transfer_recorded
from orbitq.ledger.model import (
    Account,
    Code,
    Kind,
    Result,
    StoredTransfer,
    SystemAccount,
    Transfer,
    TransferFlag,
    id_to_bytes,
)
from orbitq.ledger.store import AccountSpec, CreateAccounts, CreateTransfers, LedgerStore
from orbitq.ledger.store.rows import checkpoint_of
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate

ORIGIN = "audit.test/ledger"
PENDING_ID = 0xAAAA
PAGE_ROWS = 7  # small pages: the walk crosses page boundaries everywhere


@dataclass
class ListSource:
    """An AuditSource over plain lists."""

    head_size: int
    # The head row's other columns: last_timestamp_ns, next_account_id, checkpoints, and
    # checkpoint_hash (V20).
    head_rest: tuple[Any, ...]
    entries: list[tuple[int, bytes, bytes]]
    transfers: list[tuple[Any, ...]]
    account_rows: list[Account]
    checkpoint_rows: list[tuple[int, bytes, str, int]]
    pending_rows: list[tuple[bytes, int, int]] = field(default_factory=list)
    evidence_rows: list[tuple[Any, ...]] = field(default_factory=list)

    def head(self) -> tuple[Any, ...]:
        return (self.head_size, *self.head_rest)

    def entry_pages(self) -> Iterator[list[tuple[int, bytes, bytes]]]:
        for start in range(0, len(self.entries), PAGE_ROWS):
            yield self.entries[start : start + PAGE_ROWS]

    def transfer_pages(self) -> Iterator[list[tuple[Any, ...]]]:
        for start in range(0, len(self.transfers), PAGE_ROWS):
            yield self.transfers[start : start + PAGE_ROWS]

    def accounts(self) -> list[Account]:
        return self.account_rows

    def checkpoints(self) -> list[tuple[int, bytes, str, int]]:
        return self.checkpoint_rows

    def pending(self) -> list[tuple[bytes, int, int]]:
        return self.pending_rows

    def evidence_pages(self) -> Iterator[list[tuple[Any, ...]]]:
        for start in range(0, len(self.evidence_rows), PAGE_ROWS):
            yield self.evidence_rows[start : start + PAGE_ROWS]


@dataclass
class Ledger:
    source: ListSource
    signer: Signer

    def audit(self, **options: Any) -> AuditReport:
        return audit_log(self.source, self.signer.verifier(), **options)

    def transfer_entries(self) -> list[int]:
        return [row[13] for row in self.source.transfers]

    def forge(self, index: int, **changes: Any) -> None:
        """Re-encode transfer entry `index` with `changes` (Transfer fields, or result), update
        its row to match, recompute every stored hash and re-sign one checkpoint over it all."""
        decoded = decode_entry(self.source.entries[index][1])
        assert decoded.transfer is not None
        assert decoded.result is not None
        result = changes.pop("result", decoded.result)
        new_index = changes.pop("entry_index", index)
        transfer = replace(decoded.transfer, **changes)
        data = encode_transfer_recorded(new_index, StoredTransfer(transfer, result))
        self.source.entries[index] = (index, data, b"")
        rows = self.source.transfers
        position = next(i for i, row in enumerate(rows) if row[13] == index)
        released = rows[position][12]
        rows[position] = _row_of(transfer, result, released, index)
        self.reseal()

    def reseal(self) -> None:
        """Recompute every stored hash and sign a single checkpoint over the whole log."""
        frontier = Frontier.empty()
        entries = self.source.entries
        stored = frontier.append_entries([data for _, data, _ in entries])
        self.source.entries = [
            (index, data, hashes) for (index, data, _), hashes in zip(entries, stored, strict=True)
        ]
        # As an attacker with the key would: one new chain (L19) of one checkpoint, and the head
        # row's counters recomputed to match.
        timestamp_ns = self.source.checkpoint_rows[-1][3] + 1
        line = chain_line(ChainLink(1, timestamp_ns, None))
        note = sign_checkpoint(
            ORIGIN, frontier.size, frontier.root(), self.signer, extensions=(line,)
        )
        self.source.checkpoint_rows = [(frontier.size, frontier.root(), note, timestamp_ns)]
        last_ts = decode_entry(entries[-1][1]).timestamp_ns
        checkpoint = checkpoint_of(note)
        self.source.head_rest = (last_ts, self.source.head_rest[1], 1, body_hash(checkpoint))


def _row_of(transfer: Transfer, result: Result, released: int, index: int) -> tuple[Any, ...]:
    t = transfer
    return (
        id_to_bytes(t.id),
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        id_to_bytes(t.pending_id) if t.pending_id else None,
        t.user_data or None,
        t.kind,
        t.code,
        int(t.flags),
        t.timeout_seconds,
        t.timestamp_ns,
        int(result),
        released,
        index,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """System accounts, acme and globex; a mint; a pending transfer and a plain one; a partial
    post; a pending that is voided; a recorded failure; two checkpoints."""
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    migrate(engine)
    store = LedgerStore(engine)
    clock = count(1_764_979_200_000_000_000, 1_000_000)
    store.initialize(next(clock))
    signer = Signer.generate(ORIGIN)
    store.sign_checkpoint(signer, ORIGIN, next(clock))
    specs = (AccountSpec(Kind.CPU, tenant="acme"), AccountSpec(Kind.CPU, tenant="globex"))
    (created,) = store.write([CreateAccounts(specs)], next(clock))
    acme, globex = (account.id for account in created)  # type: ignore[union-attr]
    system = {(a.system, a.kind): a.id for a in store.system_accounts()}
    treasury = system[(SystemAccount.TREASURY, Kind.CPU)]
    escrow = system[(SystemAccount.ESCROW, Kind.CPU)]

    def transfer(id: int, debit: int, credit: int, amount: int, **extra: Any) -> Transfer:
        return Transfer(id, debit, credit, amount, kind=int(Kind.CPU), **extra)

    batches: list[tuple[Transfer, ...]] = [
        (transfer(1, treasury, acme, 100, code=int(Code.MINT)),),
        (
            transfer(
                PENDING_ID, acme, escrow, 30, code=int(Code.RESERVE), flags=TransferFlag.PENDING
            ),
            transfer(2, acme, globex, 10, code=int(Code.TRANSFER)),
        ),
        (Transfer(3, pending_id=PENDING_ID, amount=20, flags=TransferFlag.POST_PENDING),),
        (transfer(4, acme, escrow, 5, code=int(Code.RESERVE), flags=TransferFlag.PENDING),),
        (Transfer(5, pending_id=4, flags=TransferFlag.VOID_PENDING),),
        (transfer(6, acme, globex, 1000, code=int(Code.TRANSFER)),),  # exceeds credits
    ]
    for batch in batches:
        store.write([CreateTransfers(batch)], next(clock))
    store.sign_checkpoint(signer, ORIGIN, next(clock))
    with store.snapshot() as snapshot:
        source = ListSource(
            snapshot.head()[0],  # type: ignore[index]
            snapshot.head()[1:],  # type: ignore[index]
            [row for page in snapshot.entry_pages() for row in page],
            [row for page in snapshot.transfer_pages() for row in page],
            snapshot.accounts(),
            list(snapshot.checkpoints()),
            snapshot.pending(),
        )
    engine.dispose()
    return Ledger(source, signer)


def test_the_clean_ledger_passes(ledger: Ledger) -> None:
    report = ledger.audit()
    assert report.entries == report.tree_size == ledger.source.head_size == 11 + 7
    assert report.transfers == 7  # the recorded failure included
    assert report.accounts == 11
    assert report.checkpoints == 2
    assert report.newest_checkpoint is not None
    assert report.newest_checkpoint.root_hash == report.root_hash


def test_v1_the_head_must_match(ledger: Ledger) -> None:
    ledger.source.head_size += 1
    with pytest.raises(EntryIntegrityError, match=r"missing .*head row says the log has 19"):
        ledger.audit()


def test_v4_bytes_that_are_not_an_entry(ledger: Ledger) -> None:
    index = ledger.transfer_entries()[1]
    ledger.source.entries[index] = (index, b"\xff\xff\xff", b"")
    ledger.reseal()
    with pytest.raises(EntryIntegrityError, match="not a LedgerEntry") as caught:
        ledger.audit()
    assert caught.value.index == index


def test_v4_an_entry_claiming_another_index(ledger: Ledger) -> None:
    index = ledger.transfer_entries()[2]
    ledger.forge(index, entry_index=index + 1)
    with pytest.raises(EntryIntegrityError, match=f"claims index {index + 1}") as caught:
        ledger.audit()
    assert caught.value.index == index


def test_v5_timestamps_must_increase(ledger: Ledger) -> None:
    index = ledger.transfer_entries()[2]
    previous = decode_entry(ledger.source.entries[index - 1][1]).timestamp_ns
    ledger.forge(index, timestamp_ns=previous)
    with pytest.raises(EntryIntegrityError, match="is not after the previous entry") as caught:
        ledger.audit()
    assert caught.value.index == index


def test_v6_checkpoint_columns_and_sizes(ledger: Ledger) -> None:
    size, root, note, timestamp_ns = ledger.source.checkpoint_rows[-1]
    ledger.source.checkpoint_rows[-1] = (size, bytes(32), note, timestamp_ns)
    with pytest.raises(CheckpointIntegrityError, match="root column"):
        ledger.audit()
    ledger.source.checkpoint_rows[-1] = (size, root, note, timestamp_ns)
    # The last entry (and its row) removed, the head adjusted: the checkpoint covers more.
    ledger.source.entries.pop()
    ledger.source.transfers.pop()
    ledger.source.head_size -= 1
    with pytest.raises(CheckpointIntegrityError, match="the log has only 17: entries were removed"):
        ledger.audit()


def test_v6_a_root_trusted_before_must_be_reproduced(ledger: Ledger) -> None:
    size = ledger.source.checkpoint_rows[-1][0]
    with pytest.raises(CheckpointIntegrityError, match="history was rewritten") as caught:
        ledger.audit(known_roots={size - 3: bytes(32)})
    assert caught.value.size == size - 3
    with pytest.raises(CheckpointIntegrityError, match="verified checkpoint covers 99"):
        ledger.audit(known_roots={99: bytes(32)})


def test_v9_a_transfer_row_must_equal_its_entry(ledger: Ledger) -> None:
    rows = ledger.source.transfers
    index = rows[1][13]
    rows[1] = (*rows[1][:5], b"receipt", *rows[1][6:])
    with pytest.raises(EntryIntegrityError, match="stored user_data 72656365697074") as caught:
        ledger.audit()
    assert caught.value.index == index


# Values a tampered column may hold: SQLite keeps any type in any column.
_ANY_VALUE = st.one_of(
    st.none(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.binary(max_size=20),
    st.text(max_size=3),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_v9_any_other_value_in_a_compared_column_names_its_entry(
    ledger: Ledger, data: st.DataObject
) -> None:
    """V9, as a property: whatever other value (another number, bytes where NULL was, empty
    bytes, text) any of the columns a row shares with its entry holds, the audit fails and
    names that row's entry."""
    rows = ledger.source.transfers
    original = list(rows)
    at = data.draw(st.integers(0, len(rows) - 1), label="row")
    column = data.draw(st.integers(0, 11), label="column")
    stored = rows[at][column]
    value = data.draw(_ANY_VALUE.filter(lambda value: value != stored), label="value")
    rows[at] = (*rows[at][:column], value, *rows[at][column + 1 :])
    try:
        with pytest.raises(EntryIntegrityError) as caught:
            ledger.audit()
        assert caught.value.index == original[at][13]
    finally:
        rows[:] = original


def test_v9_a_transfer_entry_needs_its_row(ledger: Ledger) -> None:
    index = ledger.source.transfers.pop(2)[13]
    with pytest.raises(EntryIntegrityError, match="no transfer row matches it") as caught:
        ledger.audit()
    assert caught.value.index == index


def test_v10_an_overdraft_in_the_log(ledger: Ledger) -> None:
    plain = ledger.transfer_entries()[2]  # acme -> globex 10, after a mint of 100
    ledger.forge(plain, amount=95)
    with pytest.raises(EntryIntegrityError, match="overdraws tenant account") as caught:
        ledger.audit()
    assert caught.value.index == plain


def test_v10_a_post_of_an_unknown_pending_transfer(ledger: Ledger) -> None:
    post = ledger.transfer_entries()[3]
    ledger.forge(post, pending_id=0xBBBB)
    with pytest.raises(EntryIntegrityError, match="which no earlier entry recorded") as caught:
        ledger.audit()
    assert caught.value.index == post


def test_v10_a_void_must_release_the_whole_reservation(ledger: Ledger) -> None:
    post = ledger.transfer_entries()[3]
    ledger.forge(post, flags=TransferFlag.VOID_PENDING)  # voids 20 of a 30 reservation
    with pytest.raises(EntryIntegrityError, match=r"voids 20 .* which reserved 30") as caught:
        ledger.audit()
    assert caught.value.index == post


def test_v10_a_recorded_failure_must_be_transient(ledger: Ledger) -> None:
    failed = ledger.transfer_entries()[-1]
    ledger.forge(failed, result=Result.ACCOUNTS_MUST_BE_DIFFERENT)
    with pytest.raises(EntryIntegrityError, match="never records") as caught:
        ledger.audit()
    assert caught.value.index == failed


def test_v8_v11_account_rows(ledger: Ledger) -> None:
    accounts = ledger.source.account_rows
    removed = accounts.pop()
    with pytest.raises(EntryIntegrityError, match=rf"creates account {removed.id} \(globex cpu\)"):
        ledger.audit()
    accounts.append(replace(removed, tenant="initech"))
    with pytest.raises(EntryIntegrityError, match="the account row says initech cpu"):
        ledger.audit()
    accounts[-1] = removed
    accounts.append(replace(removed, id=99, tenant="ghost"))
    with pytest.raises(AccountIntegrityError, match=r"account 99 \(ghost cpu\): .*no entry"):
        ledger.audit()


def test_v14_pending_status_rows(ledger: Ledger) -> None:
    ledger.source.pending_rows.append((id_to_bytes(0xCCCC), 1, 0))
    with pytest.raises(InvariantViolationError, match="belongs to no pending transfer"):
        ledger.audit()
    ledger.source.pending_rows.pop()
    reserve_entry = ledger.transfer_entries()[1]
    ledger.source.pending_rows = [
        row for row in ledger.source.pending_rows if row[0] != id_to_bytes(PENDING_ID)
    ]
    with pytest.raises(EntryIntegrityError, match="has no status row") as caught:
        ledger.audit()
    assert caught.value.index == reserve_entry


def test_v13_invariants_on_stored_balances() -> None:
    def account(id: int, tenant: str | None, **balances: int) -> Account:
        system = None if tenant else SystemAccount.TREASURY
        return Account(id, Kind.CPU, tenant, system, 1 if tenant else 0, 1, **balances)

    balanced: Sequence[Account] = [
        account(1, None, debits_posted=10),
        account(2, "acme", credits_posted=10),
    ]
    check_invariants({a.id: a for a in balanced})
    unbalanced = [account(1, None, debits_posted=10), account(2, "acme", credits_posted=9)]
    with pytest.raises(InvariantViolationError, match="total debits_posted 10 != total"):
        check_invariants({a.id: a for a in unbalanced})
    negative = [account(1, None, credits_posted=5), account(2, "acme", debits_posted=5)]
    with pytest.raises(InvariantViolationError, match=r"acme cpu\) is below zero"):
        check_invariants({a.id: a for a in negative})
