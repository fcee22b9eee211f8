"""Quota operations on the ledger: mint, transfer, balances, history and operator batches.

Owns: turning tenant-level operations into ledger transfers (one transfer per kind, linked so
all kinds succeed or fail together, ids derived from the caller's idempotency id), tenant
isolation of every read and write, and turning ledger results into errors a person can act on
(an overdraft names the kind and the shortfall).

Who may call what (checked here, first, against the caller's Principal):

| method | operator | tenant key | node key |
| --- | --- | --- | --- |
| `mint` | yes | no | no |
| `balances` | any tenant's, and the system accounts | its own tenant's | no |
| `transfer` | from any tenant | from its own tenant, to any | no |
| `list_transfers` | all, or one tenant's or account's | its own tenant's | no |
| `create_transfers` | yes (any accounts, any code but expire, grant, lapse) | no | no |

The account helpers (`tenant_accounts`, `account_ids`, `system_accounts`, `apply_linked`,
`raise_for`) are for in-process callers that have checked scope already (the request service's
reservations).

Does not own: ledger rules (orbitq.ledger.engine) or transport.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from orbitq.ledger.model import (
    AMOUNT_MAX,
    BATCH_TRANSFERS_MAX,
    ID_MAX,
    Account,
    Code,
    Kind,
    Outcome,
    Result,
    StoredTransfer,
    SystemAccount,
    Transfer,
    TransferFlag,
)
from orbitq.ledger.store import AttachedWrite, CreateTransfers, LedgerStore
from orbitq.ledger.store.writer import GroupCommitWriter
from orbitq.services.auth import Principal
from orbitq.services.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from orbitq.services.tenants import Tenants

# Bound on the tenants whose account ids are cached (oldest dropped first).
ACCOUNT_ID_CACHE_TENANTS_MAX = 100_000


@dataclass(frozen=True, slots=True)
class TransferFilter:
    tenant: str = ""
    account_id: int = 0
    kind: int = 0
    code: int = 0
    since_ns: int = 0
    until_ns: int = 0


def derive_id(operation_id: int, kind: Kind) -> int:
    """The id of the transfer of `kind` made by one multi-kind operation (idempotent)."""
    digest = hashlib.sha256(
        b"orbitq/operation\x00" + operation_id.to_bytes(16, "big") + bytes([int(kind)])
    ).digest()
    value = int.from_bytes(digest[:16], "big")
    return value if value not in (0, ID_MAX) else 1


def new_operation_id() -> int:
    return secrets.randbits(128) or 1


def check_amounts(amounts: Mapping[Kind, int]) -> dict[Kind, int]:
    """Non-zero amounts only; each within the ledger's maximum; at least one."""
    chosen = {kind: amount for kind, amount in amounts.items() if amount}
    for kind, amount in chosen.items():
        if amount < 0:
            raise InvalidArgumentError(f"{kind.label} amount {amount} is negative")
        if amount > AMOUNT_MAX:
            raise InvalidArgumentError(
                f"{kind.label} amount {amount} is above the maximum {AMOUNT_MAX} (2^63-1)"
            )
    if not chosen:
        raise InvalidArgumentError(
            "give a positive amount of at least one kind (cpu, storage, link)"
        )
    return chosen


class Quota:
    def __init__(self, store: LedgerStore, writer: GroupCommitWriter, tenants: Tenants) -> None:
        self._store = store
        self._writer = writer
        self._tenants = tenants
        self._account_ids: dict[str, dict[Kind, int]] = {}
        self._system_ids: dict[tuple[SystemAccount, Kind], int] = {}

    # -- accounts ------------------------------------------------------------------------------

    def tenant_accounts(self, tenant: str) -> dict[Kind, Account]:
        self._tenants.require(tenant)
        accounts = {account.kind: account for account in self._store.accounts_of(tenant)}
        if len(accounts) < len(Kind):
            self._tenants.ensure_accounts(tenant)
            accounts = {account.kind: account for account in self._store.accounts_of(tenant)}
        return accounts

    def account_ids(self, tenant: str) -> dict[Kind, int]:
        """A tenant's account ids per kind. Accounts never change owner or go away, so ids are
        cached: the hot paths (transfer, mint, submit) then read nothing before the write."""
        ids = self._account_ids.get(tenant)
        if ids is None:
            ids = {kind: account.id for kind, account in self.tenant_accounts(tenant).items()}
            if len(self._account_ids) >= ACCOUNT_ID_CACHE_TENANTS_MAX:
                self._account_ids.pop(next(iter(self._account_ids)))
            self._account_ids[tenant] = ids
        return ids

    def system_account_ids(self) -> dict[tuple[SystemAccount, Kind], int]:
        if not self._system_ids:
            self._system_ids = {key: a.id for key, a in self.system_accounts().items()}
        return self._system_ids

    def system_accounts(self) -> dict[tuple[SystemAccount, Kind], Account]:
        return {
            (account.system, account.kind): account
            for account in self._store.system_accounts()
            if account.system is not None
        }

    def balances(
        self, principal: Principal, tenant: str, system: bool, at_ns: int
    ) -> list[Account]:
        if system:
            principal.require_operator("reading the system accounts")
            accounts = list(self.system_accounts().values())
        else:
            accounts = list(self.tenant_accounts(principal.tenant_scope(tenant, "read")).values())
        if at_ns:
            past = self._store.balances_at([account.id for account in accounts], at_ns)
            accounts = [
                replace(
                    account,
                    debits_pending=past[account.id][0],
                    debits_posted=past[account.id][1],
                    credits_pending=past[account.id][2],
                    credits_posted=past[account.id][3],
                )
                for account in accounts
                if account.timestamp_ns <= at_ns
            ]
        return sorted(accounts, key=lambda account: (account.kind, account.id))

    # -- writes --------------------------------------------------------------------------------

    def mint(
        self, principal: Principal, tenant: str, amounts: Mapping[Kind, int], operation_id: int
    ) -> tuple[list[Outcome], list[Account]]:
        principal.require_operator("minting tokens")
        if not tenant:
            raise InvalidArgumentError("tenant is required")
        chosen = check_amounts(amounts)
        accounts = self.account_ids(tenant)
        treasury = self.system_account_ids()
        transfers = [
            Transfer(
                id=derive_id(operation_id, kind),
                debit_account_id=treasury[(SystemAccount.TREASURY, kind)],
                credit_account_id=accounts[kind],
                amount=amount,
                kind=int(kind),
                code=int(Code.MINT),
                user_data=operation_id.to_bytes(16, "big"),
            )
            for kind, amount in sorted(chosen.items())
        ]
        outcomes = self.apply_linked(transfers, tenant)
        return outcomes, list(self.tenant_accounts(tenant).values())

    def transfer(
        self,
        principal: Principal,
        from_tenant: str,
        to_tenant: str,
        amounts: Mapping[Kind, int],
        operation_id: int,
    ) -> list[Outcome]:
        chained, source = self.transfer_chain(
            principal, from_tenant, to_tenant, amounts, operation_id
        )
        return self.apply_linked(chained, source)

    def transfer_chain(
        self,
        principal: Principal,
        from_tenant: str,
        to_tenant: str,
        amounts: Mapping[Kind, int],
        operation_id: int,
    ) -> tuple[list[Transfer], str]:
        """A transfer's checked, linked transfers (one per kind) and the tenant they debit,
        for a caller that hands them to the writer itself (`transfer` does)."""
        source = principal.tenant_scope(from_tenant, "move tokens of")
        if not to_tenant:
            raise InvalidArgumentError("name the tenant to transfer to (to_tenant)")
        if to_tenant == source:
            raise InvalidArgumentError(f"tenant {source!r} cannot transfer to itself")
        chosen = check_amounts(amounts)
        debit_accounts = self.account_ids(source)
        credit_accounts = self.account_ids(to_tenant)
        transfers = [
            Transfer(
                id=derive_id(operation_id, kind),
                debit_account_id=debit_accounts[kind],
                credit_account_id=credit_accounts[kind],
                amount=amount,
                kind=int(kind),
                code=int(Code.TRANSFER),
                user_data=operation_id.to_bytes(16, "big"),
            )
            for kind, amount in sorted(chosen.items())
        ]
        return linked(transfers), source

    def create_transfers(
        self, principal: Principal, transfers: Sequence[Transfer]
    ) -> list[Outcome]:
        principal.require_operator("creating transfers in a batch")
        if not transfers:
            raise InvalidArgumentError("the batch is empty")
        if len(transfers) > BATCH_TRANSFERS_MAX:
            raise InvalidArgumentError(
                f"the batch has {len(transfers)} transfers; at most {BATCH_TRANSFERS_MAX} per call"
            )
        for index, transfer in enumerate(transfers):
            if transfer.code == Code.EXPIRE:
                raise InvalidArgumentError(
                    f"transfer {index}: code expire is reserved for the ledger's own expiry"
                )
            if transfer.code in (Code.GRANT, Code.LAPSE):
                # Budgets' own transfers: a hand-made one would count in no period's books.
                label = Code(transfer.code).name.lower()
                raise InvalidArgumentError(
                    f"transfer {index}: code {label} is reserved for budgets"
                    " (orbitq quota grant); use mint or adjust"
                )
            if transfer.code == Code.CANCEL_FEE:
                # Only a cancellation past its cut-off charges one (usage reports count it as
                # a charge): a hand-made one would be a charge no request explains.
                raise InvalidArgumentError(
                    f"transfer {index}: code cancel_fee is reserved for cancellations past"
                    " their cut-off; use settle or adjust"
                )
        result = self._writer.apply(CreateTransfers(tuple(transfers)))
        return _outcomes(result)

    def apply_linked(
        self,
        transfers: Sequence[Transfer],
        debtor: str,
        *,
        purpose: str = "transfer",
        attached: AttachedWrite | None = None,
    ) -> list[Outcome]:
        """Apply `transfers` as one linked chain (all or nothing), debiting tenant `debtor`;
        a failure raises the error `raise_for` chooses (an overdraft names kind and shortfall).
        `purpose` names the operation in messages ("the transfer needs ..."); `attached` is
        written in the same transaction when the chain succeeds (CreateTransfers.attached)."""
        chained = linked(transfers)
        outcomes = _outcomes(self._writer.apply(CreateTransfers(tuple(chained), attached=attached)))
        self.raise_for(outcomes, chained, debtor, purpose=purpose)
        return outcomes

    def raise_for(
        self,
        outcomes: Sequence[Outcome],
        transfers: Sequence[Transfer],
        debtor: str,
        *,
        purpose: str = "transfer",
    ) -> None:
        """Map the first real failure of a linked operation to an error a person can act on."""
        for outcome in outcomes:
            if outcome.result in (Result.OK, Result.EXISTS, Result.LINKED_EVENT_FAILED):
                continue
            transfer = transfers[outcome.index]
            kind = Kind(transfer.kind)
            if outcome.result is Result.EXCEEDS_CREDITS:
                account = self.tenant_accounts(debtor)[kind]
                short = transfer.amount - account.available
                done = "reserved" if purpose == "reservation" else "transferred"
                raise FailedPreconditionError(
                    f"insufficient {kind.label} tokens: {debtor} has {account.available:,}"
                    f" {kind.unit} available, the {purpose} needs {transfer.amount:,}"
                    f" (short by {short:,}); nothing was {done}"
                )
            if outcome.result is Result.ID_ALREADY_FAILED:
                original = outcome.original_result.label if outcome.original_result else "?"
                raise FailedPreconditionError(
                    f"this id was already used by an operation that failed ({original});"
                    " use a new id"
                )
            if outcome.result.name.startswith("EXISTS_WITH_DIFFERENT"):
                raise AlreadyExistsError(
                    f"this id was already used for a different operation ({outcome.result.label});"
                    " use a new id"
                )
            if outcome.result.name.startswith("OVERFLOWS"):
                raise FailedPreconditionError(
                    f"the {kind.label} balance would exceed the ledger maximum"
                    f" ({outcome.result.label})"
                )
            if outcome.result in (Result.DEBIT_ACCOUNT_NOT_FOUND, Result.CREDIT_ACCOUNT_NOT_FOUND):
                raise NotFoundError(
                    f"an account of this operation does not exist ({outcome.result.label})"
                )
            raise InvalidArgumentError(f"the ledger refused the transfer: {outcome.result.label}")

    # -- history -------------------------------------------------------------------------------

    def list_transfers(
        self, principal: Principal, query: TransferFilter, limit: int, before_ns: int | None
    ) -> list[StoredTransfer]:
        account_ids: list[int] | None = None
        if query.tenant or not principal.is_operator:
            tenant = principal.tenant_scope(query.tenant, "read the history of")
            account_ids = list(self.account_ids(tenant).values())
        if query.account_id:
            if account_ids is not None and query.account_id not in account_ids:
                raise NotFoundError(f"account {query.account_id} is not one of this tenant's")
            account_ids = [query.account_id]
        return self._store.list_transfers(
            account_ids=account_ids,
            kind=query.kind or None,
            code=query.code or None,
            since_ns=query.since_ns or None,
            until_ns=query.until_ns or None,
            before_ns=before_ns,
            limit=limit,
        )


def linked(transfers: Sequence[Transfer]) -> list[Transfer]:
    """`transfers` as one linked chain: all but the last carry `linked` (all or nothing)."""
    return [
        replace(t, flags=t.flags | TransferFlag.LINKED) if i < len(transfers) - 1 else t
        for i, t in enumerate(transfers)
    ]


def _outcomes(result: object) -> list[Outcome]:
    assert isinstance(result, list)
    outcomes = [outcome for outcome in result if isinstance(outcome, Outcome)]
    assert len(outcomes) == len(result)
    return outcomes
