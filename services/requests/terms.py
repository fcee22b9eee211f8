"""Cancellation terms: until when a placed request may be cancelled free, and what after.

Owns: `CancelTerms` (the broker's cut-off before the uplink contact and the share of the link
tokens charged after it) and, for one request, its cut-off instant and its fee (`Terms`).

Like ground-station services (AWS Ground Station: free until 15 minutes before a contact),
cancelling is free until `cutoff_seconds` before the instant the ticket starts going up. After
that the operator has committed the antennas at both ends of the placement and cannot resell
that contact time, so the tenant pays `fee_percent` of the link tokens the placement uses
(uplink seconds of input, downlink seconds of output: `placement_cost(...).link`), capped at
what was reserved for link. CPU and storage are never charged: the next cycle reuses the node.
The default is 100 %: the antenna time is lost entirely to the operator, and charging less
would let a tenant hold contacts it does not mean to use for free. A request not yet placed
has no contact booked, so it has no cut-off: cancelling it is free.

Does not own: the cancellation itself (service.py) or the ledger transfers (reservations.py:
the fee is posted from the request's escrow with code `cancel_fee`).
"""

from __future__ import annotations

from dataclasses import dataclass

from orbitq.services.scheduler import Cost, Placement, Request, placement_cost, rfc3339
from orbitq.services.scheduler.costs import ceil_div

CUTOFF_SECONDS_DEFAULT = 900
FEE_PERCENT_DEFAULT = 100
CUTOFF_SECONDS_MAX = 7 * 86_400
FREE = Cost(0, 0, 0)


@dataclass(frozen=True, slots=True)
class CancelTerms:
    """The broker's terms: a cut-off before the uplink and the share of link tokens charged."""

    cutoff_seconds: int = CUTOFF_SECONDS_DEFAULT
    fee_percent: int = FEE_PERCENT_DEFAULT

    def __post_init__(self) -> None:
        if not 0 <= self.cutoff_seconds <= CUTOFF_SECONDS_MAX:
            raise ValueError(
                f"cancel_cutoff_seconds must be in 0..{CUTOFF_SECONDS_MAX}, got"
                f" {self.cutoff_seconds}"
            )
        if not 0 <= self.fee_percent <= 100:
            raise ValueError(f"cancel_fee_percent must be in 0..100, got {self.fee_percent}")

    def of(self, request: Request, placement: Placement | None, reserved_link: int) -> Terms:
        """The terms of `request` as placed (None: not placed, free to cancel)."""
        if placement is None:
            return Terms(None, FREE, self)
        link = placement_cost(request, placement).link
        fee = min(ceil_div(link * self.fee_percent, 100), reserved_link)
        return Terms(placement.uplink.at - self.cutoff_seconds, Cost(0, 0, fee), self)


@dataclass(frozen=True, slots=True)
class Terms:
    """One request's terms: free before `cutoff` (seconds; None: no cut-off), `fee` after."""

    cutoff: int | None
    fee: Cost
    broker: CancelTerms

    def due(self, now_s: int) -> Cost:
        """What cancelling at `now_s` charges."""
        if self.cutoff is None or now_s < self.cutoff:
            return FREE
        return self.fee

    def summary(self, now_s: int) -> str:
        if self.cutoff is None:
            return "free to cancel until it is placed; then free until" + (
                f" {self.broker.cutoff_seconds // 60} min before its uplink contact"
            )
        when = rfc3339(self.cutoff)
        charge = f"link {self.fee.link:,} ({self.broker.fee_percent} % of its link tokens)"
        if now_s < self.cutoff:
            return f"free to cancel until {when}; after that it costs {charge}"
        return f"past its cut-off ({when}): cancelling costs {charge}"
