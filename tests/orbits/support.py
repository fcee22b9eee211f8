"""Shared helpers for the orbital-model tests: cached bundled data, TLE writing, Skyfield passes."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

from orbitq.services.orbits import (
    ElementSet,
    GroundStation,
    load_bundled_elements,
    load_bundled_stations,
    tle_checksum,
)

DATA = Path(__file__).resolve().parent / "data"
# One Starlink satellite of each shell, by inclination (bundled snapshot, 2025-12-06).
STARLINK_SHELLS = {43.0: 54820, 53.0: 44714, 70.0: 49131, 97.6: 48880}
ISS = 25544
ONEWEB = 44057


@cache
def bundled(name: str) -> dict[int, ElementSet]:
    return {element.norad_id: element for element in load_bundled_elements(name)}


@cache
def stations() -> dict[str, GroundStation]:
    return {station.id: station for station in load_bundled_stations()}


def with_checksum(body: str) -> str:
    """A 68-character TLE line body completed with its checksum digit."""
    assert len(body) == 68, len(body)
    return body + str(tle_checksum(body))


def tle_lines(
    norad: int,
    epoch_yy: int,
    epoch_day: float,
    inclination: float,
    raan: float,
    eccentricity: float,
    arg_perigee: float,
    mean_anomaly: float,
    mean_motion: float,
) -> tuple[str, str]:
    """Write a TLE by the column layout (independently of the parser under test)."""
    epoch = f"{epoch_yy:02d}{epoch_day:012.8f}"
    line1 = with_checksum(f"1 {norad:05d}U 24001A   {epoch}  .00001000  00000+0  10000-3 0  999")
    line2 = with_checksum(
        f"2 {norad:05d} {inclination:8.4f} {raan:8.4f} {round(eccentricity * 1e7):07d} "
        f"{arg_perigee:8.4f} {mean_anomaly:8.4f} {mean_motion:11.8f}12345"
    )
    return line1, line2


def skyfield_passes(
    element: ElementSet, station: GroundStation, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, float]]:
    """(rise, set, culmination altitude) per pass from Skyfield's find_events.

    A pass in progress at `start` rises at `start`, one in progress at `end` sets at `end`,
    as compute_contacts defines them. Nothing is downloaded (builtin timescale).
    """
    from skyfield.api import EarthSatellite, load, wgs84

    timescale = load.timescale(builtin=True)
    assert element.line1 is not None
    assert element.line2 is not None
    satellite = EarthSatellite(element.line1, element.line2, element.name, timescale)
    where = wgs84.latlon(station.latitude_deg, station.longitude_deg, station.altitude_m)
    times, events = satellite.find_events(
        where,
        timescale.from_datetime(start),
        timescale.from_datetime(end),
        altitude_degrees=station.min_elevation_deg,
    )
    passes: list[tuple[datetime, datetime, float]] = []
    rise: datetime | None = None
    peak = -90.0
    for time, event in zip(times, events, strict=True):
        if event == 0:
            rise, peak = time.utc_datetime(), -90.0
            continue
        # A culmination or a set without a rise: the satellite was up at `start`.
        rise = rise or start
        if event == 1:
            peak = max(peak, float((satellite - where).at(time).altaz()[0].degrees))
        else:
            passes.append((rise, time.utc_datetime(), peak))
            rise, peak = None, -90.0
    if rise is not None:
        passes.append((rise, end, peak))
    return passes
