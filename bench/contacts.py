"""Contact windows at constellation scale: the bundled Starlink snapshot (9,038 satellites) x 20
bundled ground stations x 24 h from 2025-12-06T00:00:00Z.

Measured in the same run, on the same machine (CPU seconds of this process, best of
REPEATS, so other load on the machine mostly drops out of the ratios):
- the job: orbitq's `compute_contacts`, satellites x stations x HOURS, result objects included;
- floor (a), strict: `SatrecArray` propagating every satellite on the method's own coarse grid
  (`satellite_chunks` x `search_times_s`, exactly the samples `compute_contacts` takes), and
  nothing else: no frame rotation, no visibility, no refinement, no result objects;
- floor (b): `SatrecArray` propagating every satellite on a one-minute grid, what a plain
  sampled search pays before it even looks at a station;
- Skyfield's `find_events` on a seeded sample of satellite-station pairs (extrapolated to every
  pair), and how far orbitq's AOS/LOS are from Skyfield's on that sample.
The target is job <= TARGET_FLOOR_RATIO x floor; both ratios are printed and the JSON says
which floor the target is met against (docs/performance.md, "Contacts", says why (a) is not).
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sgp4.api import SatrecArray

from orbitq.services.orbits import (
    STARLINK_BUNDLED_EPOCH,
    ContactWindow,
    ElementSet,
    GroundStation,
    compute_contacts,
    load_bundled_elements,
    load_bundled_stations,
    satellite_chunks,
    search_times_s,
)

HOURS = 24.0
STATIONS = 20
SKYFIELD_PAIRS = 30
SEED = 20251206
TARGET_SECONDS = 30.0
TARGET_SPEEDUP = 30.0
TARGET_FLOOR_RATIO = 1.2
REPEATS = 2
PLAIN_GRID_STEP_S = 60.0
# Floor (b) propagates this many satellites at a time: 1,000 x 1,441 samples is ~70 MB of states.
FLOOR_SATELLITES_PER_CALL = 1000
RESULTS = Path(__file__).resolve().parent / "results" / "contacts.json"


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _julian(start: datetime, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Julian date split as SatrecArray wants it (whole part at midnight, fraction of a day)."""
    since = start - datetime(1970, 1, 1, tzinfo=UTC)
    day_fraction = (since.seconds + since.microseconds / 1e6) / 86400.0
    return np.full(len(seconds), 2440587.5 + since.days), day_fraction + seconds / 86400.0


def _propagation_cpu_s(grids: list[tuple[list[ElementSet], np.ndarray]], start: datetime) -> float:
    """CPU seconds of SatrecArray.sgp4 alone over (satellites, seconds-from-start) grids: the
    Satrec objects and the Julian dates are built outside the timed calls."""
    spent = 0.0
    for satellites, seconds in grids:
        satrecs = SatrecArray([e.to_satrec() for e in satellites])
        whole, fraction = _julian(start, seconds)
        began = time.process_time()
        satrecs.sgp4(whole, fraction)
        spent += time.process_time() - began
    return spent


def _floor_grids(
    elements: list[ElementSet], stations: list[GroundStation], start: datetime, end: datetime
) -> tuple[list[tuple[list[ElementSet], np.ndarray]], list[tuple[list[ElementSet], np.ndarray]]]:
    """(a) the method's own coarse grids, chunk by chunk; (b) a one-minute grid for all."""
    coarse = [
        (chunk, search_times_s(chunk, start, end))
        for chunk in satellite_chunks(elements, len(stations), start, end)
    ]
    seconds = (end - start).total_seconds()
    minute = np.linspace(0.0, seconds, round(seconds / PLAIN_GRID_STEP_S) + 1)
    plain = [
        (elements[first : first + FLOOR_SATELLITES_PER_CALL], minute)
        for first in range(0, len(elements), FLOOR_SATELLITES_PER_CALL)
    ]
    return coarse, plain


def _skyfield_sample(
    elements: list[ElementSet],
    stations: list[GroundStation],
    windows: list[ContactWindow],
) -> tuple[float, float, int]:
    """Seconds per pair for Skyfield's find_events, and the worst AOS/LOS gap to orbitq."""
    from skyfield.api import EarthSatellite, load, wgs84

    timescale = load.timescale(builtin=True)
    start = STARLINK_BUNDLED_EPOCH
    t0 = timescale.from_datetime(start)
    t1 = timescale.from_datetime(start + timedelta(hours=HOURS))
    chooser = random.Random(SEED)
    pairs = [(chooser.choice(elements), chooser.choice(stations)) for _ in range(SKYFIELD_PAIRS)]
    by_pair: dict[tuple[str, str], list[ContactWindow]] = {}
    for window in windows:
        by_pair.setdefault((window.node, window.station), []).append(window)
    spent = 0.0
    worst = 0.0
    compared = 0
    for element, station in pairs:
        began = time.perf_counter()
        satellite = EarthSatellite(element.line1, element.line2, element.name, timescale)
        where = wgs84.latlon(station.latitude_deg, station.longitude_deg, station.altitude_m)
        times, events = satellite.find_events(
            where, t0, t1, altitude_degrees=station.min_elevation_deg
        )
        spent += time.perf_counter() - began
        ours = by_pair.get((str(element.norad_id), station.id), [])
        rises = [t.utc_datetime() for t, e in zip(times, events, strict=True) if e == 0]
        sets = [t.utc_datetime() for t, e in zip(times, events, strict=True) if e == 2]
        # Compare the events both sides see (passes cut at the horizon's ends have no rise/set).
        for rise in rises:
            gap = min((abs((w.aos - rise).total_seconds()) for w in ours), default=np.inf)
            worst, compared = max(worst, gap), compared + 1
        for set_ in sets:
            gap = min((abs((w.los - set_).total_seconds()) for w in ours), default=np.inf)
            worst, compared = max(worst, gap), compared + 1
    return spent / len(pairs), worst, compared


def main() -> None:
    elements = load_bundled_elements("starlink")
    stations = load_bundled_stations()[:STATIONS]
    start = STARLINK_BUNDLED_EPOCH
    end = start + timedelta(hours=HOURS)
    coarse, plain = _floor_grids(elements, stations, start, end)
    job_cpu, job_wall = [], []
    windows: list[ContactWindow] = []
    for _ in range(REPEATS):
        del windows
        began, began_cpu = time.perf_counter(), time.process_time()
        windows = compute_contacts(elements, stations, start, end)
        job_cpu.append(time.process_time() - began_cpu)
        job_wall.append(time.perf_counter() - began)
    peak_rss_mb = _peak_rss_mb()
    seconds, cpu = min(job_wall), min(job_cpu)
    floor_coarse = min(_propagation_cpu_s(coarse, start) for _ in range(REPEATS))
    floor_plain = min(_propagation_cpu_s(plain, start) for _ in range(REPEATS))
    coarse_samples = sum(len(chunk) * len(times) for chunk, times in coarse)
    plain_samples = sum(len(chunk) * len(times) for chunk, times in plain)
    per_pair, worst, compared = _skyfield_sample(elements, stations, windows)
    skyfield_seconds = per_pair * len(elements) * len(stations)
    ratio_coarse, ratio_plain = cpu / floor_coarse, cpu / floor_plain
    meets_floor = (
        "coarse"
        if ratio_coarse <= TARGET_FLOOR_RATIO
        else "one_minute"
        if ratio_plain <= TARGET_FLOOR_RATIO
        else "none"
    )
    result = {
        "benchmark": "contacts",
        "satellites": len(elements),
        "stations": len(stations),
        "hours": HOURS,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "contacts": len(windows),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "floor_coarse_grid_samples": coarse_samples,
        "floor_coarse_grid_cpu_seconds": round(floor_coarse, 3),
        "floor_one_minute_samples": plain_samples,
        "floor_one_minute_cpu_seconds": round(floor_plain, 3),
        "ratio_to_coarse_floor": round(ratio_coarse, 2),
        "ratio_to_one_minute_floor": round(ratio_plain, 2),
        "target_floor_ratio": TARGET_FLOOR_RATIO,
        "floor_target_met_against": meets_floor,
        "sgp4_steps_per_second": round(plain_samples / floor_plain),
        "skyfield_pairs_sampled": SKYFIELD_PAIRS,
        "skyfield_seconds_per_pair": round(per_pair, 5),
        "skyfield_seconds_estimated": round(skyfield_seconds, 1),
        "speedup_vs_skyfield": round(skyfield_seconds / seconds, 1),
        "sample_events_compared": compared,
        "sample_max_aos_los_gap_seconds": round(worst, 3),
        "target_seconds": TARGET_SECONDS,
        "target_speedup": TARGET_SPEEDUP,
        "meets_targets": seconds <= TARGET_SECONDS and skyfield_seconds / seconds >= TARGET_SPEEDUP,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
