"""Worlds for the scheduler benchmark: real Starlink contacts, synthetic capacities and requests.

Contacts are computed by orbitq.services.orbits (SGP4 on the bundled CelesTrak snapshot of
2025-12-06, the first N satellites, the first 20 bundled ground stations); nothing is cached on
disk. Each window [AOS, LOS) becomes a contact [ceil(AOS), floor(LOS)) in whole seconds, so the
scheduler never uses a second the satellite is not above the station's minimum elevation.

Beyond the snapshot's ~9,000 satellites (30,000 nodes: the size of the constellations being
deployed next) the world is synthetic: `trailing_copies` adds, for each of the first N real
satellites, copies that fly its ground track `k * TRAIL_SECONDS` behind it (element sets:
RAAN + (Earth rate - J2 nodal rate) * lag, mean anomaly - n * lag, same shape), so a copy's
contacts are its original's shifted by the lag: computed once by SGP4, shifted for the copies.
`trail_check` measures what that approximation costs against SGP4 on the copies' own element
sets (it ignores J2's along-track and perigee terms: seconds over a lag of minutes).

Node capacities and link rates, request sizes and windows are synthetic (seeded): no public
data describes a constellation's onboard computers or a tenant mix.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
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


def stations_of(sites: Sequence[GroundStation], antenna_scale: int = 1) -> list[Station]:
    """The scheduler's stations; `antenna_scale` multiplies each one's antennas (at most 64):
    a constellation five times larger builds out its ground network, or its link time per
    request shrinks and the benchmark measures saturated stations, not the scheduler."""
    return [
        Station(site.id, min(64, site.antennas * antenna_scale), dict(site.labels))
        for site in sites
    ]


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


EARTH_RATE_DEG_S = math.degrees(7.2921158553e-5)
MU_KM3_S2 = 398_600.4418
EARTH_RADIUS_KM = 6378.137
J2 = 1.08262668e-3
TRAIL_SECONDS = 1_117  # between copies: prime to the 5-minute cycle, under a quarter orbit
COPY_ID_STRIDE = 1_000_000  # copy k of satellite n is node n + k * stride


def _trail(element: ElementSet, lag: int, copy: int) -> ElementSet:
    """An element set flying `element`'s ground track `lag` seconds behind it."""
    n_rad_s = element.mean_motion_rev_per_day * 2 * math.pi / 86_400
    a_km = (MU_KM3_S2 / n_rad_s**2) ** (1 / 3)
    p_km = a_km * (1 - element.eccentricity**2)
    nodal_deg_s = math.degrees(
        -1.5
        * n_rad_s
        * J2
        * (EARTH_RADIUS_KM / p_km) ** 2
        * math.cos(math.radians(element.inclination_deg))
    )
    return dataclasses.replace(
        element,
        norad_id=element.norad_id + copy * COPY_ID_STRIDE,
        name=f"{element.name} TRAIL {copy}",
        raan_deg=(element.raan_deg + (EARTH_RATE_DEG_S - nodal_deg_s) * lag) % 360,
        mean_anomaly_deg=(element.mean_anomaly_deg - math.degrees(n_rad_s) * lag) % 360,
        line1=None,
        line2=None,
    )


def trailing_elements(count: int, base: int) -> list[ElementSet]:
    """The first `base` real satellites, then their copies trailing by 1, 2, ... lags,
    `count` in all."""
    real = load_bundled_elements("starlink")[:base]
    out: list[ElementSet] = []
    for copy in range(-(-count // base)):
        chosen = real[: min(base, count - copy * base)]
        lag = copy * TRAIL_SECONDS
        out.extend(_trail(element, lag, copy) if copy else element for element in chosen)
    return out


@dataclass(frozen=True, slots=True)
class TrailingPlan:
    """The contacts of the real satellites and their trailing copies, made on demand (a day
    of contacts for 30,000 nodes is ~2.3 million: held at once they would cost ~1 GB, and the
    broker never holds more than its horizon either)."""

    windows: list[tuple[int, int, int, str]]  # originals: (start, end, index, station), by start
    starts: list[int]
    node_ids: list[str]  # originals' ids by index
    count: int
    base: int
    end: int  # no contact runs past this

    def contacts(self, begin: int, end: int) -> list[Contact]:
        """Every contact (any copy) starting in [begin, end), clipped to [START, self.end);
        with `begin` <= START, also those in progress at START."""
        out: list[Contact] = []
        for copy in range(-(-self.count // self.base)):
            lag = copy * TRAIL_SECONDS
            members = min(self.base, self.count - copy * self.base)
            first = 0 if begin <= START else bisect_left(self.starts, begin - lag)
            last = bisect_left(self.starts, end - lag)
            for start, stop, index, station in self.windows[first:last]:
                if index >= members:
                    continue
                lo, hi = max(START, start + lag), min(self.end, stop + lag)
                if hi > lo:
                    node = str(int(self.node_ids[index]) + copy * COPY_ID_STRIDE)
                    out.append(Contact(f"{node}-{station}-{lo}", node, station, lo, hi))
        return out


def trailing_copies(
    count: int, base: int, hours: int, station_count: int = 20
) -> tuple[list[ElementSet], list[GroundStation], TrailingPlan]:
    """`count` nodes: the first `base` real satellites and their trailing copies (see the
    module docstring), with contacts over [EPOCH, EPOCH + hours): the originals' computed over
    a horizon starting the longest lag earlier, shifted per copy when asked for."""
    real = load_bundled_elements("starlink")[:base]
    sites = load_bundled_stations()[:station_count]
    lead = (-(-count // base) - 1) * TRAIL_SECONDS
    windows = compute_contacts(
        real, sites, EPOCH - timedelta(seconds=lead), EPOCH + timedelta(hours=hours)
    )
    index = {str(element.norad_id): position for position, element in enumerate(real)}
    rows = sorted(
        (math.ceil(seconds(w.aos)), math.floor(seconds(w.los)), index[w.node], w.station)
        for w in windows
    )
    del windows
    plan = TrailingPlan(
        windows=rows,
        starts=[row[0] for row in rows],
        node_ids=[str(element.norad_id) for element in real],
        count=count,
        base=base,
        end=START + hours * 3600,
    )
    return trailing_elements(count, base), sites, plan


def trail_check(
    sample: int, hours: int, seed: int, base: int = 6000, station_count: int = 20
) -> dict[str, float]:
    """The shifted-contact approximation against SGP4 on `sample` copies' own element sets:
    |AOS| and |LOS| differences (s) of the windows paired by station and nearest AOS."""
    real = load_bundled_elements("starlink")[:base]
    sites = load_bundled_stations()[:station_count]
    rng = random.Random(seed)
    picked = rng.sample(real, sample)
    lag = TRAIL_SECONDS * 4
    copies = [_trail(element, lag, 4) for element in picked]
    begin, end = EPOCH, EPOCH + timedelta(hours=hours)
    own = compute_contacts(copies, sites, begin, end)
    originals = compute_contacts(picked, sites, begin - timedelta(seconds=lag), end)
    shifted: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for window in originals:
        node = str(int(window.node) + 4 * COPY_ID_STRIDE)
        shifted.setdefault((node, window.station), []).append(
            (seconds(window.aos) + lag, seconds(window.los) + lag)
        )
    errors: list[float] = []
    lo, hi = seconds(begin) + 60, seconds(end) - 60  # windows cut by the horizon are skipped
    for window in own:
        aos, los = seconds(window.aos), seconds(window.los)
        if not lo < aos < los < hi:
            continue
        pairs = shifted.get((window.node, window.station), [])
        if pairs:
            near = min(pairs, key=lambda pair: abs(pair[0] - aos))
            errors.append(max(abs(near[0] - aos), abs(near[1] - los)))
    return {
        "windows": len(errors),
        "median_error_s": round(statistics.median(errors), 1) if errors else 0.0,
        "p95_error_s": round(sorted(errors)[int(0.95 * (len(errors) - 1))], 1) if errors else 0.0,
    }


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
