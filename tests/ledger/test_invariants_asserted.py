"""A13 is asserted in production: every group commit checks what it changed before committing,
and a broken invariant halts the group-commit writer instead of being retried item by item.

The faults are injected the only way a correct engine allows: a faulty engine subclass passed
through `LedgerStore(rules=...)` (a programmer error on purpose), or balances tampered with in
the database. Real SQLite files and PostgreSQL schemas throughout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count

import hypothesis.strategies as st
import pytest
from hypothesis import given

from orbitq.ledger.engine import Engine, WorkingSet
from orbitq.ledger.errors import InvariantViolationError
from orbitq.ledger.invariants import check_group
from orbitq.ledger.model import (
    Account,
    AccountFlag,
    Code,
    Kind,
    Outcome,
    SystemAccount,
    Transfer,
)
from orbitq.ledger.store import (
    CreateTransfers,
    GroupCommitWriter,
    LedgerStore,
    WriterHaltedError,
    WriterStoppedError,
)
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate
from tests.ledger.two_tenants import two_tenants

START_NS = 1_764_979_200_000_000_000
# A transfer carrying this user_data makes the faulty engine credit one token too many.
CORRUPT = b"corrupt"
WAIT_SECONDS = 30


class CorruptingEngine(Engine):
    """The engine with a bug on purpose: an OK transfer marked CORRUPT credits its credit
    account one token more than it debits the debit account (Σ debits != Σ credits)."""

    def __init__(self, state: WorkingSet, now_ns: int) -> None:
        super().__init__(state, now_ns)
        self.state = state

    def create_transfers(self, batch: Sequence[Transfer]) -> list[Outcome]:
        outcomes = super().create_transfers(batch)
        for outcome in outcomes:
            if outcome.ok and outcome.stored and outcome.stored.transfer.user_data == CORRUPT:
                self.state.accounts[outcome.stored.transfer.credit_account_id].credits_posted += 1
        return outcomes


@dataclass
class Ledger:
    store: LedgerStore
    clock: Iterator[int]
    treasury: int
    acme: int
    globex: int
    # Every engine the store built, one per group commit.
    engines: list[Engine]

    def pay(self, id: int, amount: int, mark: bytes = b"") -> Transfer:
        """acme pays globex `amount` cpu tokens; `mark` CORRUPT trips the faulty engine."""
        return Transfer(
            id,
            self.acme,
            self.globex,
            amount,
            user_data=mark,
            kind=int(Kind.CPU),
            code=int(Code.TRANSFER),
        )


def _open(db_url: str, *, assert_invariants: bool = True) -> Ledger:
    engine = create_engine(db_url)
    migrate(engine)
    engines: list[Engine] = []

    def rules(state: WorkingSet, now_ns: int) -> Engine:
        built = CorruptingEngine(state, now_ns)
        engines.append(built)
        return built

    store = LedgerStore(engine, assert_invariants=assert_invariants, rules=rules)
    clock = count(START_NS, 1_000_000)
    store.initialize(next(clock))
    books = two_tenants(store, clock.__next__, minted=1000)
    return Ledger(store, clock, books.treasury, books.acme, books.globex, engines)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    opened = _open(db_url)
    try:
        yield opened
    finally:
        opened.store.engine.dispose()


# -- the check itself (pure) -----------------------------------------------------------------------


def _account(id: int, kind: Kind, balances: Sequence[int], limited: bool = False) -> Account:
    return Account(
        id=id,
        kind=kind,
        tenant=f"t{id}" if limited else None,
        system=None if limited else SystemAccount.TREASURY,
        flags=int(AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS) if limited else 0,
        timestamp_ns=1,
        debits_pending=balances[0],
        debits_posted=balances[1],
        credits_pending=balances[2],
        credits_posted=balances[3],
    )


@given(
    st.lists(
        st.tuples(st.sampled_from(Kind), st.integers(0, 10**6), st.booleans(), st.integers(0, 3)),
        max_size=20,
    ),
    st.data(),
)
def test_balanced_changes_pass_and_any_one_token_off_fails(
    moves: list[tuple[Kind, int, bool, int]], data: st.DataObject
) -> None:
    """Moves between pairs of accounts of one kind keep the check quiet; one token added to any
    one balance field of any touched account breaks it."""
    before: dict[int, tuple[int, int, int, int]] = {}
    after: dict[int, list[int]] = {}
    kinds: dict[int, Kind] = {}
    for kind, amount, pending, pair in moves:
        debit, credit = 10 * int(kind) + pair, 10 * int(kind) + pair + 5
        for account_id in (debit, credit):
            before.setdefault(account_id, (0, 0, 0, 0))
            after.setdefault(account_id, [0, 0, 0, 0])
            kinds[account_id] = kind
        field = 0 if pending else 1
        after[debit][field] += amount
        after[credit][field + 2] += amount
    accounts = [_account(i, kinds[i], values) for i, values in after.items()]
    check_group(before, accounts)
    if not accounts:
        return
    victim = data.draw(st.sampled_from(sorted(after)))
    field = data.draw(st.integers(0, 3))
    after[victim][field] += 1
    broken = [_account(i, kinds[i], values) for i, values in after.items()]
    name = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")[field]
    with pytest.raises(InvariantViolationError, match=f"the group's change of {name}"):
        check_group(before, broken)


def test_a_tenant_below_zero_fails_even_when_the_sums_balance() -> None:
    before = {1: (0, 0, 0, 10), 2: (0, 0, 0, 0)}
    after = [
        _account(1, Kind.CPU, (0, 11, 0, 10), limited=True),  # spends 11 of its 10
        _account(2, Kind.CPU, (0, 0, 0, 11)),
    ]
    with pytest.raises(InvariantViolationError, match=r"t1 cpu\) is below zero: available -1"):
        check_group(before, after)


# -- in the write path ---------------------------------------------------------------------------


def test_a_broken_invariant_commits_nothing_of_the_group(ledger: Ledger) -> None:
    store = ledger.store
    head, accounts = store.head(), store.all_accounts()
    good = ledger.pay(10, 5)
    bad = ledger.pay(11, 7, CORRUPT)
    with pytest.raises(
        InvariantViolationError,
        match="cpu ledger: the group's change of debits_posted 12 != the group's change of"
        " credits_posted 13",
    ):
        store.write([CreateTransfers((good,)), CreateTransfers((bad,))], next(ledger.clock))
    assert store.head() == head
    assert store.all_accounts() == accounts
    assert store.transfer(good.id) is None
    assert store.transfer(bad.id) is None
    store.check_invariants()
    # The store is not poisoned: the next group commits.
    assert [o.ok for o in store.create_transfers([good], next(ledger.clock))] == [True]
    store.check_invariants()


def test_a_tenant_found_below_zero_when_touched_stops_the_group(ledger: Ledger) -> None:
    store = ledger.store
    with store.engine.begin() as conn:  # tampered balances: acme now owes 100 more than it has
        conn.exec_driver_sql(
            "UPDATE ledger_accounts SET debits_posted = credits_posted + 100"
            f" WHERE id = {ledger.acme}"
        )
    head = store.head()
    refill = Transfer(20, ledger.treasury, ledger.acme, 1, kind=int(Kind.CPU), code=int(Code.MINT))
    with pytest.raises(InvariantViolationError, match=r"acme cpu\) is below zero: available -99"):
        store.create_transfers([refill], next(ledger.clock))
    assert store.head() == head
    assert store.transfer(refill.id) is None


def test_the_bench_only_switch_turns_the_assertion_off(db_url: str) -> None:
    """What bench/ledger.py measures: without the check, the faulty group commits, and only
    the full check over the stored state finds it."""
    ledger = _open(db_url, assert_invariants=False)
    try:
        bad = ledger.pay(11, 7, CORRUPT)
        assert [o.ok for o in ledger.store.create_transfers([bad], next(ledger.clock))] == [True]
        with pytest.raises(InvariantViolationError, match="total debits_posted"):
            ledger.store.check_invariants()
    finally:
        ledger.store.engine.dispose()


# -- the writer halts ----------------------------------------------------------------------------


class GatedClock:
    """The writer's clock, closed until `gate` opens: the writer takes its first group and then
    waits, so a test can queue work behind it in a known order."""

    def __init__(self, clock: Iterator[int]) -> None:
        self.clock = clock
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def __call__(self) -> int:
        if not self.gate.is_set():
            self.waiting.set()
            assert self.gate.wait(WAIT_SECONDS)
        return next(self.clock)


def test_the_writer_halts_on_a_broken_invariant_and_never_retries_item_by_item(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = GatedClock(ledger.clock)
    halts: list[str] = []
    writer = GroupCommitWriter(ledger.store, clock, on_halt=halts.append, group_weight_max=2)
    writer.start()
    try:
        first = writer.submit(CreateTransfers((ledger.pay(30, 1),)))
        assert clock.waiting.wait(WAIT_SECONDS)  # the writer holds [first] and waits
        items = [
            ledger.pay(31, 2),
            ledger.pay(32, 3, CORRUPT),
            ledger.pay(33, 4),  # queued behind the bad group
            ledger.pay(34, 5),
        ]
        futures = [writer.submit(CreateTransfers((t,))) for t in items]
        engines_before = len(ledger.engines)
        with caplog.at_level(logging.CRITICAL, logger="orbitq.ledger.store.writer"):
            clock.gate.set()
            assert [o.ok for o in first.result(WAIT_SECONDS)] == [True]  # type: ignore[union-attr]
            errors = [future.exception(WAIT_SECONDS) for future in futures]
        # The group [31, 32] ran once, as a group: no engine was built to retry its items, and
        # the items queued behind it were never run.
        assert len(ledger.engines) == engines_before + 2
        reason = "cpu ledger: the group's change of debits_posted 5 != the group's change of"
        for error in errors:
            assert isinstance(error, WriterHaltedError)
            assert isinstance(error, WriterStoppedError)  # hence UNAVAILABLE on the wire
            assert reason in error.reason
            assert "halted on a broken invariant" in str(error)
        assert len(halts) == 1
        assert reason in halts[0]
        assert writer.halt_reason == halts[0]
        assert any(
            record.levelno == logging.CRITICAL and reason in record.getMessage()
            for record in caplog.records
        )
        with pytest.raises(WriterHaltedError, match="halted on a broken invariant"):
            writer.submit(CreateTransfers((ledger.pay(35, 1),)))
        with pytest.raises(WriterHaltedError):
            writer.start()
        for transfer in items:
            assert ledger.store.transfer(transfer.id) is None
        assert ledger.store.transfer(30) is not None
        ledger.store.check_invariants()
    finally:
        writer.stop()
