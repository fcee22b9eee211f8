"""The ledger's invariants (docs/ledger-format.md A13): asserted by the write path before every
group commit, checked in full by tests and `orbitq ledger verify`, and available to anyone
holding accounts and transfers.

Owns: the pure checks — per kind, Σ debits_posted = Σ credits_posted and Σ debits_pending =
Σ credits_pending; no account that must not go negative is below zero; balances equal a replay
of the transfers; and the incremental form of the first two for one group commit
(`check_group`). Raises `InvariantViolationError` naming what broke; never returns a bool.

Does not own: loading accounts or transfers (orbitq.ledger.store does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

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


Balances = tuple[int, int, int, int]
"""(debits_pending, debits_posted, credits_pending, credits_posted), as `Account.balances()`."""


def check_balances(accounts: Iterable[Account]) -> None:
    """A13 (1-2): double entry per kind, and no limited account below zero."""
    totals: dict[int, list[int]] = {}
    for account in accounts:
        sums = totals.setdefault(int(account.kind), [0, 0, 0, 0])
        sums[0] += account.debits_pending
        sums[1] += account.debits_posted
        sums[2] += account.credits_pending
        sums[3] += account.credits_posted
        _check_account(account)
    for kind, sums in sorted(totals.items()):
        _check_sums(Kind(kind).label, "total", sums)


def check_group(before: Mapping[int, Balances], after: Iterable[Account]) -> None:
    """A13 (1-2) for one group commit, from what it changed: `after` are the accounts the group
    touched (as it will write them), `before` their balances when the group began.

    Per kind, the group must change Σ debits as much as Σ credits (pending and posted apart):
    then the totals, equal before the group, stay equal after it — by induction from the empty
    ledger, every commit having passed this check. Each touched account must also have no
    negative balance field and, if it must not go negative, a non-negative available balance.
    Costs O(touched accounts), not O(transfers) nor O(all accounts).
    """
    deltas: dict[int, list[int]] = {}
    for account in after:
        old = before.get(account.id, (0, 0, 0, 0))
        sums = deltas.setdefault(int(account.kind), [0, 0, 0, 0])
        sums[0] += account.debits_pending - old[0]
        sums[1] += account.debits_posted - old[1]
        sums[2] += account.credits_pending - old[2]
        sums[3] += account.credits_posted - old[3]
        _check_account(account)
    for kind, sums in sorted(deltas.items()):
        _check_sums(Kind(kind).label, "the group's change of", sums)


def _check_account(account: Account) -> None:
    if min(account.balances()) < 0:
        raise InvariantViolationError(f"account {account.id} has a negative balance field")
    if account.flags & AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS and account.available < 0:
        raise InvariantViolationError(
            f"tenant account {account.id} ({account.owner} {account.kind.label}) is below"
            f" zero: available {account.available}"
        )


def _check_sums(label: str, what: str, sums: Sequence[int]) -> None:
    """`sums` = (debits_pending, debits_posted, credits_pending, credits_posted) of a kind."""
    debits_pending, debits_posted, credits_pending, credits_posted = sums
    if debits_posted != credits_posted:
        raise InvariantViolationError(
            f"{label} ledger: {what} debits_posted {debits_posted} != {what} credits_posted"
            f" {credits_posted}"
        )
    if debits_pending != credits_pending:
        raise InvariantViolationError(
            f"{label} ledger: {what} debits_pending {debits_pending} != {what} credits_pending"
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
