"""Worlds for the scheduler benchmark: real Starlink contacts, synthetic capacities and requests.

Contacts are computed by orbitq.services.orbits (SGP4 on the bundled CelesTrak snapshot of
2025-12-06, the first N satellites, the first 20 bundled ground stations); nothing is cached on
disk. Each window [AOS, LOS) becomes a contact [ceil(AOS), floor(LOS)) in whole seconds, so the
scheduler never uses a second the satellite is not above the station's minimum elevation.

Node capacities and link rates, request sizes and windows are synthetic (seeded): no public
data describes a constellation's onboard computers or a tenant mix.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from orbitq.services.orbits import (
    STARLINK_BUNDLED_EPOCH,
    ContactWindow,
    ElementSet,
    GroundStation,
    compute_contacts,
    load_bundled_elements,
    load_bundled_stations,
)
from orbitq.services.scheduler import Contact, Node, Request, Station

EPOCH = STARLINK_BUNDLED_EPOCH
START = int(EPOCH.timestamp())
SHELLS = (43.0, 53.0, 70.0, 97.6)


def seconds(instant: datetime) -> float:
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()


def nodes_of(elements: Sequence[ElementSet], seed: int) -> list[Node]:
    """One node per satellite (id: NORAD id), with seeded capacities and link rates."""
    rng = random.Random(seed)
    out = []
    for element in elements:
        shell = min(SHELLS, key=lambda s: abs(s - element.inclination_deg))
        out.append(
            Node(
                id=str(element.norad_id),
                cpu_millicores=rng.choice((4000, 8000, 16000)),
                storage_mb=rng.choice((64_000, 128_000, 256_000)),
                downlink_mbps=rng.choice((200, 500, 1000)),
                uplink_mbps=rng.choice((20, 50)),
                labels={"shell": f"{shell:g}", "plane": f"{element.raan_deg // 5 * 5:g}"},
            )
        )
    return out


def stations_of(sites: Sequence[GroundStation]) -> list[Station]:
    return [Station(site.id, site.antennas, dict(site.labels)) for site in sites]


def contacts_of(windows: Sequence[ContactWindow]) -> list[Contact]:
    out = []
    for window in windows:
        start = math.ceil(seconds(window.aos))
        end = math.floor(seconds(window.los))
        if end > start:
            out.append(
                Contact(
                    f"{window.node}-{window.station}-{start}",
                    window.node,
                    window.station,
                    start,
                    end,
                )
            )
    return out


def starlink(
    count: int, hours: int, station_count: int = 20
) -> tuple[list[ElementSet], list[GroundStation], list[Contact]]:
    elements = load_bundled_elements("starlink")[:count]
    sites = load_bundled_stations()[:station_count]
    windows = compute_contacts(elements, sites, EPOCH, EPOCH + timedelta(hours=hours))
    return elements, sites, contacts_of(windows)


def requests(
    count: int,
    start: int,
    horizon: int,
    seed: int,
    *,
    tenants: int = 50,
    window: tuple[int, int] = (2 * 3600, 8 * 3600),
    tight: float = 0.03,
    hard: float = 0.01,
) -> list[Request]:
    """`count` requests arriving uniformly over the horizon: most placeable, `tight` of them
    with little slack, `hard` of them restricted to Antarctic stations with little slack."""
    rng = random.Random(seed)
    countries = (("US",), ("NO", "SE"), ("US", "NO", "SE", "ES", "BE"), ("AU", "ZA"))
    out: list[Request] = []
    for index in range(count):
        submitted = start + rng.randrange(0, max(1, horizon - window[0]))
        not_before = submitted + rng.randrange(0, 1800)
        deadline = max(min(start + horizon, not_before + rng.randrange(*window)), not_before + 3600)
        run_seconds = rng.randrange(60, 3600)
        if rng.random() < tight:
            deadline = not_before + run_seconds + rng.randrange(300, 1200)
        selector = rng.random()
        allowed = rng.choice(countries) if selector < 0.1 else ()
        if rng.random() < hard:
            allowed = ("AQ",)
            deadline = not_before + run_seconds + rng.randrange(600, 2400)
        out.append(
            Request(
                id=f"r{index:06d}",
                tenant=f"t{min(tenants - 1, int(rng.paretovariate(1.2)) - 1):02d}",
                cpu_millicores=rng.choice((250, 500, 1000, 2000, 4000)),
                run_seconds=run_seconds,
                storage_mb=rng.choice((100, 1000, 5000, 20_000)),
                input_mb=rng.choice((0, 0, 5, 20, 50)),
                output_mb=rng.choice((50, 200, 500, 1000, 2000)),
                not_before=not_before,
                deadline=deadline,
                priority=min(9, int(rng.expovariate(0.5))),
                station_countries=allowed,
                node_labels={"shell": "53"} if 0.1 <= selector < 0.15 else {},
                submitted_at=submitted,
            )
        )
    return out


def small_world(
    seed: int, pool: Sequence[ElementSet], sites: Sequence[GroundStation], hours: int = 6
) -> tuple[list[Node], list[Station], list[Contact], list[Request]]:
    """A contended quality instance: 10 satellites of the 53° shell, 4 mid-latitude stations
    of 1-2 antennas, 6 h of real contacts, 40-80 requests with 1-4 h windows, slower links and
    smaller nodes than at scale."""
    rng = random.Random(seed)
    horizon = hours * 3600
    chosen = rng.sample([e for e in pool if 50 < e.inclination_deg < 56], 10)
    places = rng.sample([s for s in sites if abs(s.latitude_deg) < 58], 4)
    windows = compute_contacts(chosen, places, EPOCH, EPOCH + timedelta(hours=hours))
    nodes = [
        Node(
            id=str(element.norad_id),
            cpu_millicores=rng.choice((2000, 4000)),
            storage_mb=rng.choice((8000, 16_000)),
            downlink_mbps=rng.choice((20, 50, 100)),
            uplink_mbps=rng.choice((5, 10)),
        )
        for element in chosen
    ]
    stations = [Station(s.id, rng.choice((1, 1, 2)), dict(s.labels)) for s in places]
    out: list[Request] = []
    for index in range(rng.randint(40, 80)):
        run = rng.randrange(600, 3600)
        not_before = START + rng.randrange(0, horizon - 2 * 3600)
        slack = max(run + 1800, rng.randrange(3600, 4 * 3600))
        out.append(
            Request(
                id=f"q{index:03d}",
                tenant=f"t{rng.randrange(4)}",
                cpu_millicores=rng.choice((500, 1000, 2000)),
                run_seconds=run,
                storage_mb=rng.choice((1000, 2000, 4000)),
                input_mb=rng.choice((0, 10, 40)),
                output_mb=rng.choice((50, 200, 500, 1000)),
                not_before=not_before,
                deadline=min(START + horizon, not_before + slack),
                priority=min(9, int(rng.expovariate(0.4))),
                submitted_at=START,
            )
        )
    return nodes, stations, contacts_of(windows), out
