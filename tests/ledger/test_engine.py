"""The engine's rules, one by one, on an in-memory working set (no database)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orbitq.ledger.engine import Engine, WorkingSet, expiry_id
from orbitq.ledger.model import (
    AMOUNT_MAX,
    ID_MAX,
    Account,
    AccountFlag,
    Code,
    Kind,
    PendingStatus,
    Result,
    SystemAccount,
    Transfer,
    TransferFlag,
)

NOW = 1_764_979_200_000_000_000  # 2025-12-06T00:00:00Z
TREASURY, ACME, GLOBEX, ESCROW, ACME_LINK = 1, 10, 11, 2, 12
LIMIT = AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS


def state() -> WorkingSet:
    accounts = [
        Account(TREASURY, Kind.CPU, None, SystemAccount.TREASURY, 0, 1),
        Account(ESCROW, Kind.CPU, None, SystemAccount.ESCROW, 0, 2),
        Account(ACME, Kind.CPU, "acme", None, LIMIT, 3, credits_posted=100),
        Account(GLOBEX, Kind.CPU, "globex", None, LIMIT, 4),
        Account(ACME_LINK, Kind.LINK, "acme", None, LIMIT, 5, credits_posted=100),
    ]
    accounts[0].debits_posted = 200
    return WorkingSet({a.id: a for a in accounts}, {}, {}, last_timestamp_ns=5)


def move(id: int, amount: int = 10, **fields: object) -> Transfer:
    base = Transfer(
        id=id,
        debit_account_id=ACME,
        credit_account_id=GLOBEX,
        amount=amount,
        kind=int(Kind.CPU),
        code=int(Code.TRANSFER),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def run(ws: WorkingSet, *transfers: Transfer, now: int = NOW) -> list[Result]:
    return [outcome.result for outcome in Engine(ws, now).create_transfers(transfers)]


@pytest.mark.parametrize(
    ("transfer", "expected"),
    [
        (move(1, timestamp_ns=5), Result.TIMESTAMP_MUST_BE_ZERO),
        (move(0), Result.ID_MUST_NOT_BE_ZERO),
        (move(ID_MAX), Result.ID_MUST_NOT_BE_INT_MAX),
        (
            move(1, flags=TransferFlag.PENDING | TransferFlag.POST_PENDING),
            Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        ),
        (move(1, flags=64), Result.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (move(1, debit_account_id=0), Result.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO),
        (move(1, debit_account_id=2**64 - 1), Result.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX),
        (move(1, credit_account_id=0), Result.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO),
        (move(1, credit_account_id=2**64 - 1), Result.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX),
        (move(1, credit_account_id=ACME), Result.ACCOUNTS_MUST_BE_DIFFERENT),
        (move(1, pending_id=5), Result.PENDING_ID_MUST_BE_ZERO),
        (move(1, timeout_seconds=5), Result.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
        (move(1, amount=0), Result.AMOUNT_MUST_NOT_BE_ZERO),
        (move(1, amount=AMOUNT_MAX + 1), Result.AMOUNT_EXCEEDS_MAXIMUM),
        (move(1, kind=0), Result.KIND_MUST_NOT_BE_ZERO),
        (move(1, code=0), Result.CODE_MUST_NOT_BE_ZERO),
        (move(1, debit_account_id=99), Result.DEBIT_ACCOUNT_NOT_FOUND),
        (move(1, credit_account_id=99), Result.CREDIT_ACCOUNT_NOT_FOUND),
        (
            move(1, credit_account_id=ACME_LINK, debit_account_id=GLOBEX),
            Result.ACCOUNTS_MUST_HAVE_THE_SAME_KIND,
        ),
        (move(1, kind=int(Kind.LINK)), Result.TRANSFER_MUST_HAVE_THE_SAME_KIND_AS_ACCOUNTS),
        (move(1, amount=101), Result.EXCEEDS_CREDITS),
        (
            move(1, debit_account_id=TREASURY, amount=AMOUNT_MAX - 199),
            Result.OVERFLOWS_DEBITS_POSTED,
        ),
        (move(1, amount=100), Result.OK),
    ],
)
def test_single_transfer_results(transfer: Transfer, expected: Result) -> None:
    ws = state()
    assert run(ws, transfer) == [expected]
    moved = expected is Result.OK
    assert ws.accounts[ACME].debits_posted == (100 if moved else 0)
    assert ws.accounts[GLOBEX].credits_posted == (100 if moved else 0)


def test_precedence_follows_the_enum_order() -> None:
    # Zero id beats zero amount, zero amount beats unknown accounts.
    assert run(state(), move(0, amount=0, debit_account_id=99)) == [Result.ID_MUST_NOT_BE_ZERO]
    assert run(state(), move(1, amount=0, debit_account_id=99)) == [Result.AMOUNT_MUST_NOT_BE_ZERO]


def test_retries_return_the_original_outcome() -> None:
    ws = state()
    assert run(ws, move(1, amount=60)) == [Result.OK]
    assert run(ws, move(1, amount=60)) == [Result.EXISTS]
    assert run(ws, move(1, amount=61)) == [Result.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert run(ws, move(1, amount=60, user_data=b"x")) == [Result.EXISTS_WITH_DIFFERENT_USER_DATA]
    assert run(ws, move(1, amount=60, code=int(Code.MINT))) == [Result.EXISTS_WITH_DIFFERENT_CODE]
    # A transient failure is recorded: funding the account later cannot flip it into success.
    outcomes = Engine(ws, NOW).create_transfers([move(2, amount=50)])
    assert outcomes[0].result is Result.EXCEEDS_CREDITS
    ws.accounts[ACME].credits_posted += 1000
    retried = Engine(ws, NOW).create_transfers([move(2, amount=50)])
    assert retried[0].result is Result.ID_ALREADY_FAILED
    assert retried[0].original_result is Result.EXCEEDS_CREDITS
    # A failure that depends only on the transfer itself is not recorded (a retry can only
    # fail the same way), so a corrected retry with the same id succeeds.
    assert run(ws, move(3, amount=0)) == [Result.AMOUNT_MUST_NOT_BE_ZERO]
    assert run(ws, move(3, amount=1)) == [Result.OK]


def test_two_phase_post_partial_void_and_limits() -> None:
    ws = state()
    pending = move(
        1, amount=80, credit_account_id=ESCROW, flags=TransferFlag.PENDING, timeout_seconds=60
    )
    assert run(ws, pending) == [Result.OK]
    acme = ws.accounts[ACME]
    assert (acme.debits_pending, acme.available) == (80, 20)
    assert run(ws, move(2, amount=30)) == [Result.EXCEEDS_CREDITS]
    post = Transfer(id=3, pending_id=1, amount=50, flags=TransferFlag.POST_PENDING)
    assert run(ws, replace(post, amount=81)) == [Result.EXCEEDS_PENDING_TRANSFER_AMOUNT]
    assert run(ws, replace(post, debit_account_id=GLOBEX)) == [
        Result.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
    ]
    assert run(ws, post) == [Result.OK]
    # Posting 50 of 80: 50 settles, 30 returns to the tenant.
    assert (acme.debits_pending, acme.debits_posted, acme.available) == (0, 50, 50)
    assert ws.accounts[ESCROW].credits_posted == 50
    assert ws.pending_status[1] is PendingStatus.POSTED
    void = Transfer(id=4, pending_id=1, flags=TransferFlag.VOID_PENDING)
    assert run(ws, void) == [Result.PENDING_TRANSFER_ALREADY_POSTED]
    assert run(ws, replace(post, id=5)) == [Result.PENDING_TRANSFER_ALREADY_POSTED]
    assert run(ws, Transfer(id=6, pending_id=77, flags=TransferFlag.VOID_PENDING)) == [
        Result.PENDING_TRANSFER_NOT_FOUND
    ]
    assert run(ws, Transfer(id=7, pending_id=3, flags=TransferFlag.VOID_PENDING)) == [
        Result.PENDING_TRANSFER_NOT_PENDING
    ]
    assert run(ws, Transfer(id=8, pending_id=8, flags=TransferFlag.VOID_PENDING)) == [
        Result.PENDING_ID_MUST_BE_DIFFERENT
    ]


def test_void_releases_and_expired_pending_cannot_be_posted() -> None:
    ws = state()
    pending = move(
        1, amount=40, credit_account_id=ESCROW, flags=TransferFlag.PENDING, timeout_seconds=10
    )
    assert run(ws, pending) == [Result.OK]
    later = NOW + 11 * 1_000_000_000
    post = Transfer(id=2, pending_id=1, flags=TransferFlag.POST_PENDING)
    assert run(ws, post, now=later) == [Result.PENDING_TRANSFER_EXPIRED]
    outcomes = Engine(ws, later).expire([1])
    assert [o.result for o in outcomes] == [Result.OK]
    assert outcomes[0].stored is not None
    assert outcomes[0].stored.transfer.id == expiry_id(1)
    assert outcomes[0].stored.transfer.code == Code.EXPIRE
    assert ws.accounts[ACME].available == 100
    assert ws.pending_status[1] is PendingStatus.EXPIRED
    assert Engine(ws, later).expire([1]) == []  # already resolved: nothing happens twice
    assert run(ws, replace(post, id=3), now=later) == [Result.PENDING_TRANSFER_EXPIRED]


def test_linked_chain_is_all_or_nothing() -> None:
    ws = state()
    linked = TransferFlag.LINKED
    chain = [
        move(1, amount=40, flags=linked),
        move(2, amount=40, flags=linked),
        move(3, amount=40),  # exceeds: 120 > 100
        move(4, amount=5),  # an independent transfer after the chain
    ]
    assert run(ws, *chain) == [
        Result.LINKED_EVENT_FAILED,
        Result.LINKED_EVENT_FAILED,
        Result.EXCEEDS_CREDITS,
        Result.OK,
    ]
    assert ws.accounts[ACME].debits_posted == 5
    assert 1 not in ws.transfers
    assert 2 not in ws.transfers
    assert ws.transfers[3].result is Result.EXCEEDS_CREDITS
    # The members rolled back can be retried; the failed one is recorded.
    assert run(ws, move(1, amount=40)) == [Result.OK]


def test_open_chain_at_the_end_of_a_batch_fails() -> None:
    ws = state()
    assert run(ws, move(1, amount=1, flags=TransferFlag.LINKED)) == [Result.LINKED_EVENT_CHAIN_OPEN]
    assert run(
        ws, move(2), move(3, flags=TransferFlag.LINKED), move(4, flags=TransferFlag.LINKED)
    ) == [
        Result.OK,
        Result.LINKED_EVENT_FAILED,
        Result.LINKED_EVENT_CHAIN_OPEN,
    ]
    assert ws.accounts[ACME].debits_posted == 10


def test_chain_rollback_restores_pending_state() -> None:
    ws = state()
    assert run(ws, move(1, amount=50, credit_account_id=ESCROW, flags=TransferFlag.PENDING)) == [
        Result.OK
    ]
    chain = [
        Transfer(id=2, pending_id=1, flags=TransferFlag.VOID_PENDING | TransferFlag.LINKED),
        move(3, amount=500),
    ]
    assert run(ws, *chain) == [Result.LINKED_EVENT_FAILED, Result.EXCEEDS_CREDITS]
    assert ws.pending_status[1] is PendingStatus.PENDING
    assert ws.pending_changes[1] is PendingStatus.PENDING
    assert ws.accounts[ACME].debits_pending == 50


def test_timestamps_strictly_increase_even_when_the_clock_does_not() -> None:
    ws = state()
    outcomes = Engine(ws, NOW).create_transfers([move(1, amount=1), move(2, amount=1)])
    later = Engine(ws, NOW - 10).create_transfers([move(3, amount=1)])
    stamps = [o.stored.transfer.timestamp_ns for o in [*outcomes, *later] if o.stored]
    assert stamps == sorted(set(stamps))
    assert stamps[0] == NOW
