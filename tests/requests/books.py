"""The token books of the request service, checked from the outside: what the ledger holds
must follow from the requests as stored, for every kind.

- escrow holds exactly the reservations of requests whose reservation is open (live ones), and
  its posted balances cancel out (every settled token moved on to consumed);
- consumed holds exactly what charged requests settled (completed ones, and those failed by
  their workload, charged from their usage receipt);
- each tenant: credits = minted, debits posted = what its charged requests settled, debits
  pending = its live reservations (so available = minted - settled - reserved);
- a reservation is open exactly while the request is live (none is left behind);
- the ledger's own invariants hold (double entry, nothing overdrawn, balances = replay).
"""

from __future__ import annotations

from collections.abc import Mapping

from orbitq.ledger.invariants import check_balances
from orbitq.ledger.model import Kind, SystemAccount
from orbitq.services.broker import Broker
from orbitq.services.requests import LIVE_STATES, StoredRequest
from orbitq.services.requests.reservations import amount_of


def settled_of(requests: list[StoredRequest], kind: Kind, tenant: str | None = None) -> int:
    return sum(
        amount_of(r.settled, kind) for r in requests if r.charged and tenant in (None, r.tenant)
    )


def reserved_of(requests: list[StoredRequest], kind: Kind, tenant: str | None = None) -> int:
    return sum(
        amount_of(r.reserved, kind)
        for r in requests
        if r.reservation_open and tenant in (None, r.tenant)
    )


def check_books(
    broker: Broker, minted: Mapping[str, Mapping[Kind, int]], *, replay: bool = True
) -> None:
    """Raise AssertionError unless the books balance; `replay` also replays the whole ledger
    (its cost grows with the ledger: long-running property tests do it once at the end)."""
    requests = list(broker.requests.store.all())
    for request in requests:
        live_with_tokens = request.state in LIVE_STATES and any(
            amount_of(request.reserved, kind) for kind in Kind
        )
        assert request.reservation_open == live_with_tokens, request
        if not request.charged:
            assert not any(amount_of(request.settled, kind) for kind in Kind), request
    accounts = broker.store.all_accounts()
    system = {(a.system, a.kind): a for a in accounts if a.system is not None}
    owned = {(a.tenant, a.kind): a for a in accounts if a.tenant is not None}
    for kind in Kind:
        escrow = system[(SystemAccount.ESCROW, kind)]
        assert escrow.credits_pending == reserved_of(requests, kind), kind
        assert escrow.debits_pending == 0
        assert escrow.debits_posted == escrow.credits_posted, kind
        consumed = system[(SystemAccount.CONSUMED, kind)]
        assert consumed.credits_posted == settled_of(requests, kind), kind
        for tenant, amounts in minted.items():
            account = owned[(tenant, kind)]
            assert account.credits_posted == amounts.get(kind, 0), (tenant, kind)
            assert account.debits_posted == settled_of(requests, kind, tenant), (tenant, kind)
            assert account.debits_pending == reserved_of(requests, kind, tenant), (tenant, kind)
    if replay:
        broker.store.check_invariants()
    else:
        check_balances(accounts)
