"""What callers ask the ledger's writer to do: the work items of a group commit.

Owns: the items (`CreateTransfers`, `CreateAccounts`, `ExpireDue`, `RecordEvidence`), an
account to create (`AccountSpec`), what an item returns (`WorkResult`: `Outcomes`, accounts,
`EvidenceRecorded`), and how much an item weighs against a group's size limit. Plain data:
callers build items, the group-commit writer queues them, the write path applies them.

Does not own: applying them (orbitq.ledger.store.write) or queueing them
(orbitq.ledger.store.writer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orbitq.ledger.entries import Evidence
from orbitq.ledger.model import Account, AccountFlag, Kind, Outcome, SystemAccount, Transfer

if TYPE_CHECKING:
    import sqlalchemy as sa


@dataclass(frozen=True, slots=True)
class AttachedRows:
    """Rows to insert in the group's own transaction, per table in order (a parent table's
    rows before its children's). Unlike a callable, rows of consecutive items are inserted
    together: one executemany per table for the run, not a statement per item per table."""

    inserts: tuple[tuple[sa.Table, tuple[Mapping[str, object], ...]], ...]


# A service's rows written in the group's own transaction (see CreateTransfers.attached): rows
# to insert, or a callable for writes that depend on what is stored.
AttachedWrite = Callable[["sa.Connection"], None] | AttachedRows


class AttachedWriteError(Exception):
    """An item's attached write failed (its cause says why, e.g. a unique key taken by a
    concurrent writer): the item failed alone, with nothing of it committed. Not a ledger
    fault, so the writer does not log it as one."""


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
    """One client batch of transfers (A7, A8); results: `Outcomes`, one `Outcome` per transfer.

    With `evidence` (a usage receipt and the transfers that settle against it), the evidence is
    recorded first (E5: its entry comes before the transfers', in the same transaction), at most
    once, and `Outcomes.evidence` says where it is, whether the transfers succeed or not.

    With `attached`, a service's own rows that must exist exactly when the transfers do (a
    request and the reservation made for it): written through the group's connection, in its
    transaction, when every transfer of the item succeeded, and not at all otherwise. The
    two commit together or not at all, so no crash can leave one without the other; and they
    share the group's commit. An error it raises fails the item alone (the writer retries the
    rest of the group without it) and reaches the caller.
    """

    transfers: tuple[Transfer, ...]
    evidence: Evidence | None = None
    attached: AttachedWrite | None = None


@dataclass(frozen=True, slots=True)
class RecordEvidence:
    """Append evidence (a node's enrolled key, or a receipt) to the log at most once (E5);
    results: one `EvidenceRecorded`."""

    evidence: Evidence


@dataclass(frozen=True, slots=True)
class EvidenceRecorded:
    """Where evidence sits in the log. `new` is False when it was already there (a retry: the
    existing entry is returned, nothing is appended)."""

    entry_index: int
    digest: bytes
    new: bool


class Outcomes(list[Outcome]):
    """The results of a CreateTransfers: one Outcome per transfer, in order (a list), and
    where the item's evidence sits in the log (None: the item carried none)."""

    def __init__(
        self, outcomes: Iterable[Outcome] = (), evidence: EvidenceRecorded | None = None
    ) -> None:
        super().__init__(outcomes)
        self.evidence = evidence


@dataclass(frozen=True, slots=True)
class CreateAccounts:
    """Accounts to create (existing ones are returned as they are); results: the accounts."""

    specs: tuple[AccountSpec, ...]


@dataclass(frozen=True, slots=True)
class ExpireDue:
    """Release every pending transfer whose timeout has passed by `now_ns`."""


WorkItem = CreateTransfers | CreateAccounts | ExpireDue | RecordEvidence
WorkResult = list[Outcome] | list[Account] | list[EvidenceRecorded]


def work_weight(item: WorkItem) -> int:
    """How much an item counts against a group's size limit."""
    if isinstance(item, CreateTransfers):
        return max(1, len(item.transfers))
    if isinstance(item, CreateAccounts):
        return max(1, len(item.specs))
    if isinstance(item, RecordEvidence):
        return 1
    return EXPIRE_BATCH_MAX
