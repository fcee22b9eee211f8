"""The simulator's tenants and the seeded stream of service requests they submit.

Owns: who the tenants are (four profiles: an imaging company with many small jobs, a climate
lab with long heavy runs, a SAR company whose data may land only in some countries, and an
under-funded start-up whose quota runs out), how many tokens each is minted, and one request
per arrival: size, window, priority and station selector drawn from `random.Random(seed)`.
Pure: the same seed, horizon and station countries give the same workload, byte for byte.

Does not own: submitting (driver.py) or any rule on what a valid request is (the request
service validates what arrives here like anything else).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from orbitq.ledger.model import Kind
from orbitq.services.requests import RequestSpec

HOUR = 3_600
# Work arrives over the first part of the horizon, so late arrivals still have a window.
ARRIVAL_WINDOW_FRACTION = 0.85
# The shortest window a request is given beyond its run time (a pass or two of slack).
SLACK_SECONDS_MIN = 15 * 60
# Priorities and how often each occurs: most work is routine, a little is urgent.
PRIORITY_WEIGHTS = {0: 70, 1: 20, 3: 7, 5: 3}
# Events (a wildfire, a flood) bring bursts: this share of the requests arrives within
# BURST_SECONDS of one of BURSTS seeded instants, with short deadlines — the contention that
# ordering and preemption are for.
BURST_FRACTION = 0.3
BURSTS = 3
BURST_SECONDS = 1_800


@dataclass(frozen=True)
class SizeClass:
    cpu_millicores: tuple[int, ...]
    run_seconds: tuple[int, int]
    storage_mb: tuple[int, int]
    input_mb: tuple[int, int]
    output_mb: tuple[int, int]


SMALL = SizeClass((250, 500, 1_000), (120, 900), (100, 2_000), (0, 20), (10, 300))
LARGE = SizeClass((2_000, 3_000, 4_000), (1_800, 5_400), (4_000, 32_000), (10, 200), (200, 2_000))


@dataclass(frozen=True)
class TenantProfile:
    name: str
    display_name: str
    workloads: tuple[str, ...]
    share: int  # relative number of requests
    large_fraction: float
    selector_fraction: float  # requests that may land only in some countries
    tight_fraction: float  # requests with little slack beyond their run
    # Tokens minted, as a multiple of the tenant's worst-case demand over the whole run.
    funding: float


PROFILES: tuple[TenantProfile, ...] = (
    TenantProfile(
        "aurora", "Aurora Earth Imaging", ("img:wildfire-v3", "img:ais-fuse"),
        share=35, large_fraction=0.1, selector_fraction=0.1, tight_fraction=0.1, funding=2.0,
    ),
    TenantProfile(
        "borealis", "Borealis Climate Lab", ("wx:nowcast-2", "sar:ice-2"),
        share=25, large_fraction=0.45, selector_fraction=0.0, tight_fraction=0.05, funding=2.0,
    ),
    TenantProfile(
        "cirrus", "Cirrus SAR Analytics", ("sar:flood-1", "sar:subsidence"),
        share=25, large_fraction=0.25, selector_fraction=0.4, tight_fraction=0.1, funding=2.0,
    ),
    TenantProfile(
        "driftwood", "Driftwood Robotics", ("ml:crop-yield",),
        share=15, large_fraction=0.3, selector_fraction=0.0, tight_fraction=0.2, funding=0.35,
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Arrival:
    """One request and when its tenant submits it (seconds since the Unix epoch)."""

    at: int
    tenant: str
    idempotency_key: str
    spec: RequestSpec


@dataclass(frozen=True)
class Workload:
    arrivals: tuple[Arrival, ...]  # in order of `at`
    minted: dict[str, dict[Kind, int]]  # tenant -> tokens to mint before the first arrival


def generate(
    seed: int,
    count: int,
    start: int,
    end: int,
    countries: Sequence[str],
    slowest_downlink_mbps: int,
) -> Workload:
    """`count` arrivals over [start, end) and each tenant's mint. `countries` are the station
    countries selectors may name; `slowest_downlink_mbps` prices the worst-case link cost."""
    assert count >= 0, "the driver checks the count"
    assert end - start >= 2 * HOUR, "the driver checks the horizon"
    rng = random.Random(seed)  # noqa: S311 (a seeded workload, not a secret)
    bursts = [rng.randint(start, start + int((end - start) * 0.7)) for _ in range(BURSTS)]
    shares = [profile.share for profile in PROFILES]
    choices = sorted(set(countries))
    arrivals = []
    total = {profile.name: dict.fromkeys(Kind, 0) for profile in PROFILES}
    largest = {profile.name: dict.fromkeys(Kind, 0) for profile in PROFILES}
    for index in range(count):
        profile = rng.choices(PROFILES, weights=shares)[0]
        burst = rng.choice(bursts) if rng.random() < BURST_FRACTION else None
        spec, at = _request(rng, profile, index, (start, end), burst, choices)
        arrivals.append(Arrival(at, profile.name, f"sim-{index:06d}", spec))
        for kind, amount in _worst_case(spec, slowest_downlink_mbps).items():
            total[profile.name][kind] += amount
            largest[profile.name][kind] = max(largest[profile.name][kind], amount)
    arrivals.sort(key=lambda arrival: (arrival.at, arrival.idempotency_key))
    minted = {
        profile.name: {
            # At least the tenant's largest request, so even an under-funded tenant gets work.
            kind: max(
                math.ceil(total[profile.name][kind] * profile.funding),
                largest[profile.name][kind],
                1,
            )
            for kind in Kind
        }
        for profile in PROFILES
    }
    return Workload(tuple(arrivals), minted)


def _request(
    rng: random.Random,
    profile: TenantProfile,
    index: int,
    horizon: tuple[int, int],
    burst: int | None,
    countries: Sequence[str],
) -> tuple[RequestSpec, int]:
    start, end = horizon
    large = rng.random() < profile.large_fraction
    size = LARGE if large else SMALL
    run = rng.randint(*size.run_seconds)
    latest_arrival = min(
        start + int((end - start) * ARRIVAL_WINDOW_FRACTION), end - run - SLACK_SECONDS_MIN
    )
    if burst is not None:
        at = min(burst + rng.randint(0, BURST_SECONDS), latest_arrival)
    else:
        at = rng.randint(start, latest_arrival)
    at = max(start, at)
    not_before = at + rng.choice((0, 0, 0, 300, 900, 1_800))
    if burst is not None:
        slack = rng.randint(30 * 60, 2 * HOUR)
    elif rng.random() < profile.tight_fraction:
        slack = rng.randint(SLACK_SECONDS_MIN, 45 * 60)
    else:
        slack = rng.randint(HOUR, 6 * HOUR)
    deadline = min(not_before + run + slack, end)
    not_before = min(not_before, deadline - run)
    selector: tuple[str, ...] = ()
    if countries and rng.random() < profile.selector_fraction:
        selector = tuple(sorted(rng.sample(countries, min(len(countries), rng.randint(2, 4)))))
    spec = RequestSpec(
        name=f"{profile.name}-{'large' if large else 'small'}-{index}",
        workload=rng.choice(profile.workloads),
        cpu_millicores=rng.choice(size.cpu_millicores),
        run_seconds=run,
        storage_mb=rng.randint(*size.storage_mb),
        input_mb=rng.randint(*size.input_mb),
        output_mb=rng.randint(*size.output_mb),
        not_before=not_before,
        deadline=deadline,
        priority=rng.choices(list(PRIORITY_WEIGHTS), weights=list(PRIORITY_WEIGHTS.values()))[0],
        station_countries=selector,
    )
    return spec, at


def _worst_case(spec: RequestSpec, slowest_downlink_mbps: int) -> dict[Kind, int]:
    """An upper estimate of what the request may reserve (the broker's quote decides)."""
    window = spec.deadline - spec.not_before
    link_mb = spec.output_mb + spec.input_mb
    return {
        Kind.CPU: math.ceil(spec.cpu_millicores * spec.run_seconds / 1_000),
        Kind.STORAGE: math.ceil(spec.storage_mb * window / HOUR),
        Kind.LINK: math.ceil(link_mb * 8 / max(1, slowest_downlink_mbps)) + 2,
    }
