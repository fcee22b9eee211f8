"""Ground tracks and station footprints: what `orbitq contacts plot` draws over the map.

Owns: `ground_track` (the sub-satellite point of one element set on a fixed time step: SGP4,
TEME -> Earth-fixed, latitude and longitude, and the altitude flown), `footprint` (the ground
points from which a satellite at a given altitude stands at least a station's minimum elevation
above the station's horizon: a small circle around it) and `load_land` (the bundled land
outlines, data/land-110m.json). Pure numpy; degrees, kilometres, seconds.
Does not own: contact windows (contacts) or drawing (orbitq.clients.cli.skymap).

For a picture the Earth is a sphere of the WGS-84 equatorial radius and latitudes are
geocentric: both differ from the ellipsoid by at most 0.2 degrees (~20 km), under a pixel of a
world map 1,600 pixels wide. Contact windows themselves are computed on the ellipsoid.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files

import numpy as np

from orbitq.services.orbits.elements import ElementSet
from orbitq.services.orbits.frames import WGS84_A_KM, FloatArray, gmst_rad, teme_to_ecef

TRACK_STEP_SECONDS_DEFAULT = 30.0
TRACK_POINTS_MAX = 20_000
FOOTPRINT_POINTS = 181
LAND_FILE = "land-110m.json"
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class GroundTrack:
    """Sub-satellite points at `seconds` after `start`; NaN where SGP4 failed (decay)."""

    start: datetime
    seconds: FloatArray
    latitude_deg: FloatArray
    longitude_deg: FloatArray
    # Mean height above the sphere over the track: what the footprints are drawn for.
    altitude_km: float


def ground_track(
    element: ElementSet,
    start: datetime,
    seconds: float,
    step_seconds: float = TRACK_STEP_SECONDS_DEFAULT,
) -> GroundTrack:
    """The track of `element` over [start, start + seconds], one point every `step_seconds`
    (and one at the end). Raises ValueError for a naive start, a non-positive span or step, or
    more than TRACK_POINTS_MAX points."""
    if start.tzinfo is None:
        raise ValueError("start must be an aware UTC datetime")
    if not (seconds > 0 and step_seconds > 0):
        raise ValueError("the span and the step must be more than 0 seconds")
    count = math.ceil(seconds / step_seconds) + 1
    if count > TRACK_POINTS_MAX:
        raise ValueError(
            f"{count:,} track points exceed TRACK_POINTS_MAX = {TRACK_POINTS_MAX:,}: "
            "shorten the span or lengthen the step"
        )
    times = np.minimum(np.arange(count) * step_seconds, seconds)
    since_unix = start.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    jd_whole = 2440587.5 + since_unix.days
    fraction = (since_unix.seconds + since_unix.microseconds / 1e6 + times) / _SECONDS_PER_DAY
    errors, r_teme, v_teme = element.to_satrec().sgp4_array(np.full(count, jd_whole), fraction)
    r_teme[errors != 0] = np.nan
    v_teme[errors != 0] = np.nan
    r_fixed, _ = teme_to_ecef(r_teme, v_teme, gmst_rad(jd_whole, fraction))
    x, y, z = r_fixed[:, 0], r_fixed[:, 1], r_fixed[:, 2]
    radius = np.sqrt(x * x + y * y + z * z)
    altitude = float(np.nanmean(radius)) - WGS84_A_KM if np.isfinite(radius).any() else 0.0
    return GroundTrack(
        start=start,
        seconds=times,
        latitude_deg=np.degrees(np.arctan2(z, np.hypot(x, y))),
        longitude_deg=np.degrees(np.arctan2(y, x)),
        altitude_km=altitude,
    )


def footprint_radius_deg(altitude_km: float, min_elevation_deg: float) -> float:
    """Earth central angle from a station to the farthest sub-satellite point at which a
    satellite at `altitude_km` still stands `min_elevation_deg` above its horizon:
    arccos(R cos(e) / (R + h)) - e."""
    elevation = math.radians(min_elevation_deg)
    ratio = WGS84_A_KM * math.cos(elevation) / (WGS84_A_KM + max(altitude_km, 0.0))
    return max(0.0, math.degrees(math.acos(min(1.0, ratio)) - elevation))


def footprint(
    latitude_deg: float,
    longitude_deg: float,
    altitude_km: float,
    min_elevation_deg: float,
    points: int = FOOTPRINT_POINTS,
) -> tuple[FloatArray, FloatArray]:
    """(latitudes, longitudes) of the circle around a station inside which a satellite at
    `altitude_km` is visible above `min_elevation_deg`; longitudes in [-180, 180)."""
    radius = math.radians(footprint_radius_deg(altitude_km, min_elevation_deg))
    bearing = np.linspace(0.0, 2.0 * math.pi, points)
    lat0, lon0 = math.radians(latitude_deg), math.radians(longitude_deg)
    sin_lat = math.sin(lat0) * math.cos(radius) + math.cos(lat0) * math.sin(radius) * np.cos(
        bearing
    )
    latitude = np.arcsin(np.clip(sin_lat, -1.0, 1.0))
    delta = np.arctan2(
        np.sin(bearing) * math.sin(radius) * math.cos(lat0),
        math.cos(radius) - math.sin(lat0) * sin_lat,
    )
    longitude = (np.degrees(lon0 + delta) + 180.0) % 360.0 - 180.0
    return np.degrees(latitude), longitude


def load_land() -> list[FloatArray]:
    """The bundled land outlines (Natural Earth 1:110m, see data/README.md): one (n, 2) array
    of (longitude, latitude) degrees per ring."""
    text = files("orbitq.services.orbits.data").joinpath(LAND_FILE).read_text(encoding="utf-8")
    document = json.loads(text)
    scale = float(document["scale"])
    rings = []
    for flat in document["rings"]:
        steps = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        rings.append(np.cumsum(steps, axis=0) / scale)
    return rings
