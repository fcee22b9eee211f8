"""A request's tokens in the ledger: reserve at submission, then release or settle, once.

Owns: the transfers of a request (docs/scheduler.md, "Reservation and settlement"):

- **reserve** — one linked chain of pending transfers tenant → escrow, one per kind with a
  non-zero cost (cpu, storage, link), code `reserve`, timeout = deadline + grace - now;
- **release** — a `void_pending` of each: code `release` for cancelled, unschedulable and
  expired requests, code `refund` for requests that failed by the operator's fault (the
  node, its agent or its contacts: the tenant gets everything back and the ledger says why);
  `void_unowned` releases, with the same ids and code `release`, a reservation whose request
  was never stored (recovery.py);
- **settle** — per kind, a chain of a `post_pending` of the actual amount (code `settle`, or
  `cancel_fee` for the fee of a request cancelled after its cut-off; the rest returns to the
  tenant) linked with a transfer of that amount escrow → consumed (code
  `consume`), so escrow returns to zero; a kind whose actual amount is 0 is released instead;
- **settle by receipt** — the same transfers, with SHA-256 of the node's usage receipt as
  their `user_data`, in one ledger item with the receipt itself (`ReceiptEvidence`): the
  signed log holds the receipt, then the transfers that settle against it.

Every other transfer carries the request id (its 16 bytes) in `user_data`, and every id is
derived from the request id, the step and the kind (`transfer_id`), so any of these operations
can be retried — after a crash, by another replica, twice at once — and the ledger answers
`exists` instead of moving tokens again (the receipt, keyed by its digest, is appended once). A
reservation the ledger already released by its timeout is a settled fact, not an error: that
kind settles nothing.

Does not own: the ledger's rules, account ids (orbitq.services.quota) or when any of this
happens (the lifecycle).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from orbitq.ledger.entries import ReceiptEvidence
from orbitq.ledger.model import (
    BATCH_TRANSFERS_MAX,
    ID_MAX,
    Code,
    Kind,
    Outcome,
    Result,
    SystemAccount,
    Transfer,
    TransferFlag,
)
from orbitq.ledger.store import AttachedWrite, CreateTransfers
from orbitq.ledger.store.work import Outcomes
from orbitq.ledger.store.writer import GroupCommitWriter
from orbitq.services.quota import Quota
from orbitq.services.requests.model import Fault, RequestState, StoredRequest
from orbitq.services.scheduler import Cost

log = logging.getLogger(__name__)


class Step:
    """Which of a request's operations a transfer belongs to (part of its derived id)."""

    RESERVE = 1
    RELEASE = 2
    SETTLE = 3
    CONSUME = 4


KINDS = (Kind.CPU, Kind.STORAGE, Kind.LINK)
# Requests per ledger batch: each needs at most 2 transfers per kind.
REQUESTS_PER_BATCH_MAX = BATCH_TRANSFERS_MAX // (2 * len(KINDS))
# A resolution of a pending transfer that leaves it resolved, one way or another.
_RESOLVED = frozenset(
    {
        Result.OK,
        Result.EXISTS,
        Result.PENDING_TRANSFER_EXPIRED,
        Result.PENDING_TRANSFER_ALREADY_VOIDED,
    }
)


def transfer_id(request_id: str, step: int, kind: Kind) -> int:
    """SHA-256("orbitq/request" ‖ 0x00 ‖ request id (16 bytes) ‖ step ‖ kind)[:16]."""
    digest = hashlib.sha256(
        b"orbitq/request\x00" + bytes.fromhex(request_id) + bytes([step, int(kind)])
    ).digest()
    value = int.from_bytes(digest[:16], "big")
    return value if value not in (0, ID_MAX) else 1


def amount_of(cost: Cost, kind: Kind) -> int:
    return {Kind.CPU: cost.cpu, Kind.STORAGE: cost.storage, Kind.LINK: cost.link}[kind]


def capped(actual: Cost, reserved: Cost) -> Cost:
    """What is charged: the actual use, never more than was reserved (a node whose link is
    slower than every node known at submission cannot overcharge the tenant)."""
    return Cost(
        min(actual.cpu, reserved.cpu),
        min(actual.storage, reserved.storage),
        min(actual.link, reserved.link),
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """One request's transfers; per chain (one per reserved kind): the kind, the index of its
    first transfer, its length (1: a release; 2: a post and its consume) and the amount it
    settles."""

    request: StoredRequest
    transfers: list[Transfer]
    chains: list[tuple[Kind, int, int, int]]


class Reservations:
    def __init__(self, quota: Quota, writer: GroupCommitWriter) -> None:
        self._quota = quota
        self._writer = writer

    # -- reserve -------------------------------------------------------------------------------

    def reserve(
        self,
        request_id: str,
        tenant: str,
        cost: Cost,
        timeout_seconds: int,
        *,
        attached: AttachedWrite | None = None,
    ) -> None:
        """Reserve `cost` for the request in one linked chain, or raise (FailedPrecondition
        naming the kind and the shortfall when the tenant has too few tokens): all or
        nothing. `attached` (the request's own rows) commits with the chain or not at all."""
        assert timeout_seconds > 0
        accounts = self._quota.account_ids(tenant)
        escrow = self._quota.system_account_ids()
        user_data = bytes.fromhex(request_id)
        transfers = [
            Transfer(
                id=transfer_id(request_id, Step.RESERVE, kind),
                debit_account_id=accounts[kind],
                credit_account_id=escrow[(SystemAccount.ESCROW, kind)],
                amount=amount_of(cost, kind),
                user_data=user_data,
                kind=int(kind),
                code=int(Code.RESERVE),
                flags=int(TransferFlag.PENDING),
                timeout_seconds=timeout_seconds,
            )
            for kind in KINDS
            if amount_of(cost, kind) > 0
        ]
        assert transfers, "a request always costs cpu and storage"
        self._quota.apply_linked(transfers, tenant, purpose="reservation", attached=attached)

    # -- release and settle --------------------------------------------------------------------

    def release(self, requests: Sequence[StoredRequest]) -> dict[str, Cost | None]:
        """Void the reservations of `requests` (a refund when the operator was at fault);
        returns {id: None} for each one the ledger no longer holds (the others are logged and
        stay open for the next attempt)."""
        return self._resolve([(request, None) for request in requests])

    def void_unowned(self, pending: Sequence[tuple[str, Kind]]) -> set[str]:
        """Void reservations the ledger holds for requests that were never stored: each
        (request id, kind) names the pending transfer `reserve` made; the void has the id a
        release of that request would have (code `release`). Only for pending transfers read
        from the ledger: a void of one that does not exist would be recorded as failed under
        that id (A9). Returns the request ids whose every given reservation is resolved."""
        transfers = [
            Transfer(
                id=transfer_id(request_id, Step.RELEASE, kind),
                pending_id=transfer_id(request_id, Step.RESERVE, kind),
                user_data=bytes.fromhex(request_id),
                code=int(Code.RELEASE),
                flags=int(TransferFlag.VOID_PENDING),
            )
            for request_id, kind in pending
        ]
        unresolved: set[str] = set()
        for first in range(0, len(transfers), BATCH_TRANSFERS_MAX):
            chunk = transfers[first : first + BATCH_TRANSFERS_MAX]
            result = self._writer.apply(CreateTransfers(tuple(chunk)))
            outcomes = [outcome for outcome in result if isinstance(outcome, Outcome)]
            assert len(outcomes) == len(chunk)
            for (request_id, kind), outcome in zip(
                pending[first : first + BATCH_TRANSFERS_MAX], outcomes, strict=True
            ):
                if outcome.result not in _RESOLVED:
                    log.error(
                        "unowned reservation of request %s (%s): the ledger refused to void it"
                        " (%s); it is released at its timeout",
                        request_id,
                        kind.label,
                        outcome.result.label,
                    )
                    unresolved.add(request_id)
        return {request_id for request_id, _ in pending} - unresolved

    def settle_receipts(
        self, charges: Sequence[tuple[StoredRequest, Cost, bytes]]
    ) -> dict[str, tuple[Cost, int]]:
        """Settle each request's charge (capped at its reservation) against its usage receipt
        (the envelope as the node signed it): one ledger item per request, the receipt and its
        transfers together. Returns {id: (what was settled, the ReceiptRecorded entry)} for
        each one the ledger no longer holds (the others are logged and retried later)."""
        submitted = []
        for request, charge, receipt in charges:
            assert request.receipt_digest is not None
            plan = self._plan(request, charge, user_data=request.receipt_digest)
            evidence = ReceiptEvidence(request_id=request.id, node=_node(request), receipt=receipt)
            item = CreateTransfers(tuple(plan.transfers), evidence=evidence)
            submitted.append((plan, self._writer.submit(item)))
        done: dict[str, tuple[Cost, int]] = {}
        for plan, future in submitted:
            result = future.result(timeout=30.0)
            assert isinstance(result, Outcomes)
            assert result.evidence is not None
            settled = _settled(plan, result)
            if settled is not None:
                done[plan.request.id] = (settled, result.evidence.entry_index)
        return done

    def resolve_attached(
        self,
        request: StoredRequest,
        charge: Cost | None,
        receipt: bytes | None,
        attached: Callable[[sa.Connection, Cost | None], None],
    ) -> Outcomes | None:
        """Resolve one ended request's reservation in ONE ledger item: settle `charge` (capped
        at the reservation) against `receipt` (the envelope, recorded first; the transfers'
        user_data is its SHA-256, `request.receipt_digest`), or release it when `charge` is
        None. `attached(connection, settled)` (settled: what the transfers settle; None for a
        release) is written in the item's own transaction when every transfer succeeds, so
        the service's rows and the ledger's commit together, in the writer's group commit.
        The item's outcomes (with where the receipt sits in the log, `evidence`) when it
        committed so; None when the ledger refused a transfer (no attached write; the
        transfers that did succeed keep their ids, so `settle_receipts` or `release` retried
        later answers them EXISTS). An error of the attached write is raised
        as AttachedWriteError, with nothing of the item committed."""
        user_data = request.receipt_digest if receipt is not None else None
        plan = self._plan(request, charge, user_data=user_data)
        amounts = dict.fromkeys(KINDS, 0)
        for kind, _, length, amount in plan.chains:
            amounts[kind] = amount if length == 2 else 0
        settled = (
            Cost(amounts[Kind.CPU], amounts[Kind.STORAGE], amounts[Kind.LINK])
            if charge is not None
            else None
        )
        evidence = (
            ReceiptEvidence(request_id=request.id, node=_node(request), receipt=receipt)
            if receipt is not None
            else None
        )

        def write(connection: sa.Connection) -> None:
            attached(connection, settled)

        item = CreateTransfers(tuple(plan.transfers), evidence=evidence, attached=write)
        result = self._writer.apply(item)
        assert isinstance(result, Outcomes)
        if all(outcome.ok for outcome in result):
            return result
        _settled(plan, result)  # logs why
        return None

    def settle(self, charges: Sequence[tuple[StoredRequest, Cost]]) -> dict[str, Cost | None]:
        """Post each request's charge (capped at its reservation) and move it to consumed;
        returns {id: what was actually settled} for each one the ledger no longer holds."""
        return self._resolve(list(charges))

    def _resolve(
        self, items: Sequence[tuple[StoredRequest, Cost | None]]
    ) -> dict[str, Cost | None]:
        done: dict[str, Cost | None] = {}
        for chunk in _chunks(items, REQUESTS_PER_BATCH_MAX):
            plans = [self._plan(request, charge) for request, charge in chunk]
            batch = [transfer for plan in plans for transfer in plan.transfers]
            outcomes: list[Outcome] = []
            if batch:
                result = self._writer.apply(CreateTransfers(tuple(batch)))
                outcomes = [outcome for outcome in result if isinstance(outcome, Outcome)]
                assert len(outcomes) == len(batch)
            offset = 0
            for plan, (_, charge) in zip(plans, chunk, strict=True):
                mine = outcomes[offset : offset + len(plan.transfers)]
                offset += len(plan.transfers)
                settled = _settled(plan, mine)
                if settled is not None:
                    done[plan.request.id] = settled if charge is not None else None
        return done

    def _plan(
        self, request: StoredRequest, charge: Cost | None, user_data: bytes | None = None
    ) -> _Plan:
        user_data = user_data or bytes.fromhex(request.id)
        # What a release is: a refund when the operator failed the tenant.
        release = Code.REFUND if request.fault is Fault.OPERATOR else Code.RELEASE
        # A charge of a cancelled request is its cancellation fee: its own code in the log.
        post = Code.CANCEL_FEE if request.state is RequestState.CANCELLED else Code.SETTLE
        transfers: list[Transfer] = []
        chains: list[tuple[Kind, int, int, int]] = []
        escrow = self._quota.system_account_ids()
        to_charge = capped(charge, request.reserved) if charge is not None else None
        for kind in KINDS:
            if amount_of(request.reserved, kind) == 0:
                continue
            pending = transfer_id(request.id, Step.RESERVE, kind)
            amount = amount_of(to_charge, kind) if to_charge is not None else 0
            first = len(transfers)
            if amount == 0:
                # A post of 0 would post the whole amount (A5): release instead.
                transfers.append(
                    Transfer(
                        id=transfer_id(request.id, Step.RELEASE, kind),
                        pending_id=pending,
                        user_data=user_data,
                        code=int(release),
                        flags=int(TransferFlag.VOID_PENDING),
                    )
                )
            else:
                transfers.append(
                    Transfer(
                        id=transfer_id(request.id, Step.SETTLE, kind),
                        pending_id=pending,
                        amount=amount,
                        user_data=user_data,
                        code=int(post),
                        flags=int(TransferFlag.POST_PENDING | TransferFlag.LINKED),
                    )
                )
                transfers.append(
                    Transfer(
                        id=transfer_id(request.id, Step.CONSUME, kind),
                        debit_account_id=escrow[(SystemAccount.ESCROW, kind)],
                        credit_account_id=escrow[(SystemAccount.CONSUMED, kind)],
                        amount=amount,
                        user_data=user_data,
                        kind=int(kind),
                        code=int(Code.CONSUME),
                    )
                )
            chains.append((kind, first, len(transfers) - first, amount))
        return _Plan(request, transfers, chains)


def _node(request: StoredRequest) -> str:
    assert request.placement is not None
    return request.placement.node


def _settled(plan: _Plan, outcomes: Sequence[Outcome]) -> Cost | None:
    """What a request's transfers settled, per kind, or None when something is unresolved
    (logged: the reservation stays open and the next pass retries with the same ids)."""
    amounts = dict.fromkeys(KINDS, 0)
    for kind, first, length, amount in plan.chains:
        head = outcomes[first]
        if head.result not in _RESOLVED:
            log.error(
                "request %s: the ledger refused to resolve its %s reservation (%s); retrying"
                " on the next pass",
                plan.request.id,
                kind.label,
                head.result.label,
            )
            return None
        if length == 2 and head.result in (Result.OK, Result.EXISTS):
            tail = outcomes[first + 1]
            assert tail.result in (Result.OK, Result.EXISTS), (
                f"consume of request {plan.request.id} {kind.label}: {tail.result.label}"
            )
            amounts[kind] = amount
        elif length == 2:
            log.warning(
                "request %s: its %s reservation was already released (%s): nothing charged",
                plan.request.id,
                kind.label,
                head.result.label,
            )
    return Cost(amounts[Kind.CPU], amounts[Kind.STORAGE], amounts[Kind.LINK])


def _chunks(
    items: Sequence[tuple[StoredRequest, Cost | None]], size: int
) -> Iterator[Sequence[tuple[StoredRequest, Cost | None]]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]
