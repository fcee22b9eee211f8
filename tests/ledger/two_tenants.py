"""Books several ledger-store tests open with: the CPU treasury, and two tenants' CPU accounts
(acme and globex), acme minted a given amount by transfer id 1.

Owns only that setup; each test module keeps its own store, clock and rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orbitq.ledger.model import Code, Kind, SystemAccount, Transfer
from orbitq.ledger.store import AccountSpec, LedgerStore


@dataclass(frozen=True)
class TwoTenants:
    treasury: int
    acme: int
    globex: int


def cpu_treasury(store: LedgerStore) -> int:
    """The id of the treasury's CPU account."""
    return next(
        account.id
        for account in store.system_accounts()
        if account.system is SystemAccount.TREASURY and account.kind is Kind.CPU
    )


def two_tenants(store: LedgerStore, now: Callable[[], int], minted: int) -> TwoTenants:
    """acme's and globex's CPU accounts, created at `now()`, and `minted` tokens to acme."""
    specs = [AccountSpec(Kind.CPU, tenant="acme"), AccountSpec(Kind.CPU, tenant="globex")]
    acme, globex = (account.id for account in store.create_accounts(specs, now()))
    treasury = cpu_treasury(store)
    mint = Transfer(1, treasury, acme, minted, kind=int(Kind.CPU), code=int(Code.MINT))
    assert [outcome.ok for outcome in store.create_transfers([mint], now())] == [True]
    return TwoTenants(treasury, acme, globex)
