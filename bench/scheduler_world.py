"""Synthetic worlds for the scheduler benchmark: a LEO constellation's contacts, and requests.

Contacts follow the shape of real LEO passes without propagating orbits: a satellite at
~550 km (period ~95 min) sees a station it can reach in two clusters a day (ascending and
descending passes, ~12 h apart), each of a few consecutive orbits, each pass 2-10 minutes.
A station sees a satellite only if its latitude is within reach of the orbit's inclination
(Starlink's shells: 53°, 43°, 70°, 97.6°), and sees more passes near that latitude. The result
is ~60-90 contacts per satellite per day across 20 stations, as SGP4 gives for Starlink.

`synthetic_contacts` is the one seam: when real contacts (orbitq.services.orbits) are
available the benchmark calls that instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np
from orbitq.services.scheduler import Contact, Node, Request, Station

# (id, country, operator, latitude, antennas): public sites, antennas are modelling choices
STATION_SITES: tuple[tuple[str, str, str, float, int], ...] = (
    ("svalbard", "NO", "KSAT", 78.23, 4),
    ("tromso", "NO", "KSAT", 69.66, 2),
    ("troll", "AQ", "KSAT", -72.01, 2),
    ("puntaarenas", "CL", "KSAT", -52.94, 2),
    ("hartebeesthoek", "ZA", "SANSA", -25.89, 2),
    ("singapore", "SG", "KSAT", 1.35, 2),
    ("kiruna", "SE", "ESA", 67.86, 2),
    ("redu", "BE", "ESA", 50.00, 1),
    ("kourou", "GF", "ESA", 5.25, 1),
    ("malargue", "AR", "ESA", -35.78, 1),
    ("newnorcia", "AU", "ESA", -31.05, 1),
    ("cebreros", "ES", "ESA", 40.45, 1),
    ("wallops", "US", "NASA", 37.94, 2),
    ("whitesands", "US", "NASA", 32.50, 1),
    ("fairbanks", "US", "NASA", 64.86, 2),
    ("mcmurdo", "AQ", "NASA", -77.84, 1),
    ("hawaii", "US", "SSC", 19.01, 1),
    ("ohio", "US", "AWS", 40.10, 2),
    ("oregon", "US", "AWS", 45.60, 2),
    ("stockholm", "SE", "AWS", 59.33, 2),
)
SHELLS: tuple[tuple[float, float], ...] = ((53.0, 0.55), (43.0, 0.15), (70.0, 0.1), (97.6, 0.2))
REACH_DEGREES = 9.0  # a 550 km orbit is seen ~9° of latitude beyond its inclination


@dataclass(frozen=True)
class Site:
    station: Station
    latitude: float


def stations(count: int = 20, antennas_scale: int = 1) -> list[Site]:
    assert 1 <= count <= len(STATION_SITES)
    return [
        Site(Station(sid, antennas * antennas_scale, {"country": cc, "operator": op}), lat)
        for sid, cc, op, lat, antennas in STATION_SITES[:count]
    ]


def constellation(
    count: int, seed: int, first_norad: int = 44_713
) -> tuple[list[Node], list[float]]:
    """Nodes with Starlink-like labels, and each one's inclination (degrees)."""
    rng = random.Random(seed)
    nodes: list[Node] = []
    inclinations: list[float] = []
    shells = [shell for shell, _ in SHELLS]
    weights = [weight for _, weight in SHELLS]
    for index in range(count):
        inclination = rng.choices(shells, weights)[0]
        nodes.append(
            Node(
                id=str(first_norad + index),
                cpu_millicores=rng.choice((4000, 8000, 16000)),
                storage_mb=rng.choice((64_000, 128_000, 256_000)),
                downlink_mbps=rng.choice((200, 500, 1000)),
                uplink_mbps=rng.choice((20, 50)),
                labels={"shell": f"{inclination:g}", "plane": str(index % 72)},
            )
        )
        inclinations.append(inclination)
    return nodes, inclinations


def synthetic_contacts(
    nodes: list[Node],
    inclinations: list[float],
    sites: list[Site],
    start: int,
    seconds: int,
    seed: int,
) -> list[Contact]:
    """LEO-like passes of every node over every site within [start, start + seconds)."""
    rng = np.random.default_rng(seed)
    count = len(nodes)
    inclination = np.asarray(inclinations)
    reach = np.minimum(inclination, 180.0 - inclination) + REACH_DEGREES
    period = rng.uniform(5640.0, 5760.0, size=count)
    out: list[Contact] = []
    for site in sites:
        latitude = abs(site.latitude)
        visible = np.flatnonzero(reach >= latitude)
        closeness = np.clip(latitude / reach[visible], 0.0, 1.0) ** 2
        for cluster in range(2):
            phase = rng.uniform(0, 86_400, size=visible.size) + cluster * 43_200.0
            passes = 1 + rng.binomial(3, 0.25 + 0.6 * closeness)
            for orbit in range(4):
                active = passes > orbit
                nodes_here = visible[active]
                at = (phase[active] + orbit * period[nodes_here]) % 86_400.0
                duration = rng.uniform(120.0, 600.0, size=nodes_here.size)
                for day in range(0, seconds // 86_400 + 1):
                    begin = start + day * 86_400 + at.astype(np.int64)
                    end = begin + duration.astype(np.int64)
                    keep = (begin >= start) & (end <= start + seconds)
                    for node_index, b, e in zip(
                        nodes_here[keep].tolist(),
                        begin[keep].tolist(),
                        end[keep].tolist(),
                        strict=True,
                    ):
                        node_id = nodes[node_index].id
                        cid = f"{node_id}-{site.station.id}-{cluster}{orbit}{day}"
                        out.append(Contact(cid, node_id, site.station.id, b, e))
    out.sort(key=lambda c: (c.start, c.id))
    return out


def requests(
    count: int,
    start: int,
    seconds: int,
    seed: int,
    *,
    tenants: int = 50,
    window: tuple[int, int] = (2 * 3600, 8 * 3600),
    tight: float = 0.03,
    hard: float = 0.01,
) -> list[Request]:
    """`count` requests arriving uniformly over the horizon, most of them placeable."""
    rng = random.Random(seed)
    countries = (("US",), ("NO", "SE"), ("US", "NO", "SE", "ES", "BE"), ("AU", "ZA"))
    out: list[Request] = []
    for index in range(count):
        submitted = start + rng.randrange(0, max(1, seconds - window[0]))
        not_before = submitted + rng.randrange(0, 1800)
        deadline = min(start + seconds, not_before + rng.randrange(*window))
        if deadline - not_before < 3600:
            deadline = not_before + 3600
        run_seconds = rng.randrange(60, 3600)
        if rng.random() < tight:  # in a hurry: often no pass before the deadline
            deadline = not_before + run_seconds + rng.randrange(300, 1200)
        selector = rng.random()
        stations_allowed = rng.choice(countries) if selector < 0.1 else ()
        if rng.random() < hard:  # Antarctic stations only, soon: few nodes ever can
            stations_allowed = ("AQ",)
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
                station_countries=stations_allowed,
                node_labels={"shell": "53"} if 0.1 <= selector < 0.15 else {},
                submitted_at=submitted,
            )
        )
    return out


def small_world(
    seed: int, start: int, hours: int = 6
) -> tuple[list[Node], list[Station], list[Contact], list[Request]]:
    """A contended quality instance: 10 nodes, 4 stations of 1-2 antennas, 40-80 requests
    with 1-4 h windows, slower links and bigger runs than at scale."""
    rng = random.Random(seed)
    seconds = hours * 3600
    base, inclinations = constellation(10, seed=seed)
    nodes = [
        replace(
            node,
            cpu_millicores=rng.choice((2000, 4000)),
            storage_mb=rng.choice((8000, 16_000)),
            downlink_mbps=rng.choice((20, 50, 100)),
            uplink_mbps=rng.choice((5, 10)),
        )
        for node in base
    ]
    chosen = rng.sample(stations(20), 4)
    sites = [Site(replace(s.station, antennas=rng.choice((1, 1, 2))), s.latitude) for s in chosen]
    reach = [min(inclination, 70.0) for inclination in inclinations]  # all see some station
    contacts = synthetic_contacts(nodes, reach, sites, start, seconds, seed=seed)
    out: list[Request] = []
    for index in range(rng.randint(40, 80)):
        run = rng.randrange(600, 3600)
        not_before = start + rng.randrange(0, seconds - 2 * 3600)
        deadline = min(start + seconds, not_before + max(run + 1800, rng.randrange(3600, 4 * 3600)))
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
                deadline=deadline,
                priority=min(9, int(rng.expovariate(0.4))),
                submitted_at=start,
            )
        )
    return nodes, [s.station for s in sites], contacts, out
