"""What callers ask the ledger's writer to do: the work items of a group commit.

Owns: the items (`CreateTransfers`, `CreateAccounts`, `ExpireDue`), an account to create
(`AccountSpec`), what an item returns (`WorkResult`), and how much an item weighs against a
group's size limit. Plain data: callers build items, the group-commit writer queues them, the
write path applies them.

Does not own: applying them (orbitq.ledger.store.write) or queueing them
(orbitq.ledger.store.writer).
"""

from __future__ import annotations

from dataclasses import dataclass

from orbitq.ledger.model import Account, AccountFlag, Kind, Outcome, SystemAccount, Transfer

# Bound on the pending transfers one expiry pass releases; the next pass takes the rest.
EXPIRE_BATCH_MAX = 8190


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """An account to create: per (tenant, kind) or (system, kind), idempotently."""

    kind: Kind
    tenant: str | None = None
    system: SystemAccount | None = None

    @property
    def flags(self) -> int:
        # A3: tenant accounts may never spend more than they hold; the treasury may go negative.
        return AccountFlag.DEBITS_MUST_NOT_EXCEED_CREDITS if self.tenant is not None else 0


@dataclass(frozen=True, slots=True)
class CreateTransfers:
    """One client batch of transfers (A7, A8); results: one `Outcome` per transfer."""

    transfers: tuple[Transfer, ...]


@dataclass(frozen=True, slots=True)
class CreateAccounts:
    """Accounts to create (existing ones are returned as they are); results: the accounts."""

    specs: tuple[AccountSpec, ...]


@dataclass(frozen=True, slots=True)
class ExpireDue:
    """Release every pending transfer whose timeout has passed by `now_ns`."""


WorkItem = CreateTransfers | CreateAccounts | ExpireDue
WorkResult = list[Outcome] | list[Account]


def work_weight(item: WorkItem) -> int:
    """How much an item counts against a group's size limit."""
    if isinstance(item, CreateTransfers):
        return max(1, len(item.transfers))
    if isinstance(item, CreateAccounts):
        return max(1, len(item.specs))
    return EXPIRE_BATCH_MAX
