"""Contact windows at constellation scale: the bundled Starlink snapshot (9,038 satellites) x 20
bundled ground stations x 24 h from 2025-12-06T00:00:00Z.

Measured in the same run, on the same machine: orbitq's `compute_contacts` on the whole job,
Skyfield's `find_events` on a seeded sample of satellite-station pairs (extrapolated to every
pair), and raw `SatrecArray` throughput, the floor any SGP4-based method pays per sample.
Also reports how far orbitq's AOS/LOS are from Skyfield's on the sample.

Back-of-envelope: a one-minute grid alone is 9,038 x 1,440 = 13 M SGP4 steps, ~7 s at the
~1.8 M steps/s SatrecArray does here; orbitq's grid is 1/24 orbit (~240 s, 3.3 M steps, ~2 s)
and refinement runs on interpolated states, so the job is dominated by numpy array passes
(20 stations x 3.3 M samples) and by building ~0.7 M result objects.
"""

from __future__ import annotations

import json
import random
import resource
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from orbitq.services.orbits import (
    STARLINK_BUNDLED_EPOCH,
    ContactWindow,
    ElementSet,
    GroundStation,
    compute_contacts,
    load_bundled_elements,
    load_bundled_stations,
)
from sgp4.api import SatrecArray

HOURS = 24.0
STATIONS = 20
SKYFIELD_PAIRS = 30
SEED = 20251206
TARGET_SECONDS = 30.0
TARGET_SPEEDUP = 30.0
RESULTS = Path(__file__).resolve().parent / "results" / "contacts.json"


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _sgp4_steps_per_second(elements: list[ElementSet]) -> float:
    """SatrecArray on 1,000 satellites x a one-minute day: the raw propagation rate."""
    satrecs = SatrecArray([e.to_satrec() for e in elements[:1000]])
    minutes = np.arange(1440.0)
    epoch = elements[0].to_satrec()
    began = time.perf_counter()
    satrecs.sgp4(np.full(1440, epoch.jdsatepoch), epoch.jdsatepochF + minutes / 1440.0)
    return 1000 * 1440 / (time.perf_counter() - began)


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
    began = time.perf_counter()
    windows = compute_contacts(elements, stations, start, start + timedelta(hours=HOURS))
    seconds = time.perf_counter() - began
    peak_rss_mb = _peak_rss_mb()
    per_pair, worst, compared = _skyfield_sample(elements, stations, windows)
    skyfield_seconds = per_pair * len(elements) * len(stations)
    result = {
        "benchmark": "contacts",
        "satellites": len(elements),
        "stations": len(stations),
        "hours": HOURS,
        "seconds": round(seconds, 3),
        "contacts": len(windows),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "skyfield_pairs_sampled": SKYFIELD_PAIRS,
        "skyfield_seconds_per_pair": round(per_pair, 5),
        "skyfield_seconds_estimated": round(skyfield_seconds, 1),
        "speedup_vs_skyfield": round(skyfield_seconds / seconds, 1),
        "sample_events_compared": compared,
        "sample_max_aos_los_gap_seconds": round(worst, 3),
        "sgp4_steps_per_second": round(_sgp4_steps_per_second(elements)),
        "target_seconds": TARGET_SECONDS,
        "target_speedup": TARGET_SPEEDUP,
        "meets_targets": seconds <= TARGET_SECONDS and skyfield_seconds / seconds >= TARGET_SPEEDUP,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
