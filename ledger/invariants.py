"""The ledger's invariants (docs/ledger-format.md A13), checked after every batch in tests, by
`orbitq ledger verify`, and available to anyone holding accounts and transfers.

Owns: the pure checks — per kind, Σ debits_posted = Σ credits_posted and Σ debits_pending =
Σ credits_pending; no account that must not go negative is below zero; balances equal a replay
of the transfers. Raises `InvariantViolationError` naming what broke; never returns a bool.

Does not own: loading accounts or transfers (orbitq.ledger.store does).
"""

from __future__ import annotations

from collections.abc import Iterable

from orbitq.ledger.errors import InvariantViolationError
from orbitq.ledger.model import Account, AccountFlag, Kind, Result, StoredTransfer, TransferFlag

_PENDING = int(TransferFlag.PENDING)
_POST = int(TransferFlag.POST_PENDING)
_VOID = int(TransferFlag.VOID_PENDING)


def effect_of(flags: int, amount: int, released: int) -> tuple[int, int]:
    """A12: how an OK transfer changes (pending, posted) on both of its accounts."""
    if flags & _PENDING:
        return amount, 0
    if flags & _POST:
        return -released, amount
    if flags & _VOID:
        return -released, 0
    return 0, amount


def check_balances(accounts: Iterable[Account]) -> None:
    """A13 (1-2): double entry per kind, and no limited account below zero."""
    totals: dict[int, list[int]] = {}
    for account in accounts:
        sums = totals.setdefault(int(account.kind), [0, 0, 0, 0])
        sums[0] += account.debits_pending
        sums[1] += account.debits_posted
        sums[2] += account.credits_pending
        sums[3] += account.credits_posted
        if min(account.balances()) < 0:
            raise InvariantViolationError(f"account {account.id} has a negative balance field")
        if account.flags & AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS and account.available < 0:
            raise InvariantViolationError(
                f"tenant account {account.id} ({account.owner} {account.kind.label}) is below"
                f" zero: available {account.available}"
            )
    for kind, (debits_pending, debits_posted, credits_pending, credits_posted) in sorted(
        totals.items()
    ):
        label = Kind(kind).label
        if debits_posted != credits_posted:
            raise InvariantViolationError(
                f"{label} ledger: total debits_posted {debits_posted} != total credits_posted"
                f" {credits_posted}"
            )
        if debits_pending != credits_pending:
            raise InvariantViolationError(
                f"{label} ledger: total debits_pending {debits_pending} != total credits_pending"
                f" {credits_pending}"
            )


def replay(transfers: Iterable[StoredTransfer]) -> dict[int, list[int]]:
    """Balances (debits_pending, debits_posted, credits_pending, credits_posted) per account,
    from the transfers alone, in any order (the effects commute)."""
    balances: dict[int, list[int]] = {}
    for stored in transfers:
        if stored.result is not Result.OK:
            continue
        t = stored.transfer
        pending, posted = effect_of(t.flags, t.amount, stored.released)
        debit = balances.setdefault(t.debit_account_id, [0, 0, 0, 0])
        credit = balances.setdefault(t.credit_account_id, [0, 0, 0, 0])
        debit[0] += pending
        debit[1] += posted
        credit[2] += pending
        credit[3] += posted
    return balances


def check_replay(accounts: Iterable[Account], transfers: Iterable[StoredTransfer]) -> None:
    """A13 (3): every stored balance equals the replay of the transfers."""
    replayed = replay(transfers)
    for account in accounts:
        expected = replayed.pop(account.id, [0, 0, 0, 0])
        if list(account.balances()) != expected:
            raise InvariantViolationError(
                f"account {account.id} ({account.owner} {account.kind.label}): stored balances"
                f" {account.balances()} but the transfers replay to {tuple(expected)}"
            )
    if replayed:
        unknown = sorted(replayed)[:5]
        raise InvariantViolationError(
            f"transfers move balances of accounts that do not exist: {unknown}"
        )
