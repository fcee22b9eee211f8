"""Token costs of a request (brief §2) and the link seconds it needs. Pure integer arithmetic.

Owns: `downlink_seconds`, `uplink_seconds`, `Cost`, `quote` (before placement) and
`placement_cost` (of a placement). The request service reserves `quote(...).maximum` at
submission and settles at most `placement_cost(...)`.

Does not own: rates (a node's), token accounts or the ledger.

Rounding (every result is a whole number of tokens, rounded up once, never per part):
- cpu core-seconds      = ceil(cpu_millicores * run_seconds / 1000)
- storage MB-hours      = ceil(storage_mb * held_seconds / 3600), held from the start of the run
                          until the last downlink segment ends
- link seconds          = downlink seconds + uplink seconds when the request uploads input
- downlink seconds      = ceil(output_mb * 8 / downlink_mbps)   (0 when there is no output)
- uplink seconds        = max(1, ceil(input_mb * 8 / uplink_mbps)): the ticket always goes up,
                          but the single second of a ticket without input is not charged
Megabytes are 10^6 bytes and rates megabits (10^6 bits) per second, so MB * 8 / Mbps is seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from orbitq.services.scheduler.model import Placement, Request

SECONDS_PER_HOUR = 3600
MILLICORES_PER_CORE = 1000
BITS_PER_BYTE = 8


def ceil_div(numerator: int, denominator: int) -> int:
    """Exact ceiling of numerator / denominator for a non-negative numerator."""
    assert numerator >= 0
    assert denominator > 0
    return -(-numerator // denominator)


def downlink_seconds(output_mb: int, downlink_mbps: int) -> int:
    """Contact seconds to bring `output_mb` down at `downlink_mbps`; 0 without output."""
    return ceil_div(output_mb * BITS_PER_BYTE, downlink_mbps)


def uplink_seconds(input_mb: int, uplink_mbps: int) -> int:
    """Contact seconds to send the ticket and `input_mb` up; at least 1 for the ticket."""
    return max(1, ceil_div(input_mb * BITS_PER_BYTE, uplink_mbps))


@dataclass(frozen=True, slots=True)
class Cost:
    """Tokens of each kind: cpu core-seconds, storage MB-hours, link seconds."""

    cpu: int
    storage: int
    link: int


@dataclass(frozen=True, slots=True)
class Quote:
    """The cost range of a request before placement, at given link rates.

    `minimum` holds storage only for the run and the downlink; `maximum` for the whole window
    [not_before, deadline] — the amount to reserve, since no placement can hold it longer.
    """

    minimum: Cost
    maximum: Cost


def cost(request: Request, *, held_seconds: int, link_seconds: int) -> Cost:
    """The cost of `request` holding storage `held_seconds` and using `link_seconds`."""
    assert held_seconds >= request.run_seconds
    assert link_seconds >= 0
    return Cost(
        cpu=ceil_div(request.cpu_millicores * request.run_seconds, MILLICORES_PER_CORE),
        storage=ceil_div(request.storage_mb * held_seconds, SECONDS_PER_HOUR),
        link=link_seconds,
    )


def charged_link_seconds(request: Request, *, downlink_mbps: int, uplink_mbps: int) -> int:
    """Downlink seconds plus uplink seconds when there is input (the ticket alone is free)."""
    down = downlink_seconds(request.output_mb, downlink_mbps)
    up = uplink_seconds(request.input_mb, uplink_mbps) if request.input_mb > 0 else 0
    return down + up


def quote(request: Request, *, downlink_mbps: int, uplink_mbps: int) -> Quote:
    """The minimum and maximum cost of `request` on a node with these link rates."""
    link = charged_link_seconds(request, downlink_mbps=downlink_mbps, uplink_mbps=uplink_mbps)
    shortest = request.run_seconds + downlink_seconds(request.output_mb, downlink_mbps)
    longest = max(shortest, request.deadline - request.not_before)
    return Quote(
        minimum=cost(request, held_seconds=shortest, link_seconds=link),
        maximum=cost(request, held_seconds=longest, link_seconds=link),
    )


def placement_cost(request: Request, placement: Placement) -> Cost:
    """The exact cost of a placement: storage held [start, finish), link seconds as planned."""
    assert placement.request == request.id
    up = placement.uplink.end - placement.uplink.at if request.input_mb > 0 else 0
    return cost(
        request,
        held_seconds=placement.finish - placement.start,
        link_seconds=placement.downlink_seconds + up,
    )
