"""What the sky picture is drawn from: the ground track agrees with Skyfield's sub-satellite
point, a footprint circle is where a satellite at that altitude stands at the station's minimum
elevation, and the bundled land outlines are the world's."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.path import Path as Outline
from skyfield.api import EarthSatellite, load, wgs84

from orbitq.clients.cli.skymap import cut_at_antimeridian
from orbitq.services.orbits import load_bundled_elements
from orbitq.services.orbits.frames import WGS84_A_KM
from orbitq.services.orbits.groundtrack import (
    TRACK_POINTS_MAX,
    footprint,
    footprint_radius_deg,
    ground_track,
    load_land,
)

START = datetime(2025, 12, 6, tzinfo=UTC)
# Geocentric against geodetic latitude: at most 0.19 degrees apart on WGS-84.
LATITUDE_DEG_TOLERANCE = 0.2
LONGITUDE_DEG_TOLERANCE = 0.01


def test_the_track_is_skyfields_sub_satellite_point() -> None:
    element = load_bundled_elements("starlink")[0]
    assert element.line1 is not None
    assert element.line2 is not None
    track = ground_track(element, START, 3 * 3600.0, step_seconds=600.0)
    assert len(track.seconds) == 19
    assert track.seconds[-1] == 3 * 3600.0
    satellite = EarthSatellite(element.line1, element.line2, element.name, load.timescale())
    times = load.timescale(builtin=True).utc(2025, 12, 6, 0, 0, track.seconds)
    point = wgs84.subpoint_of(satellite.at(times))
    assert np.max(np.abs(point.latitude.degrees - track.latitude_deg)) < LATITUDE_DEG_TOLERANCE
    east = (point.longitude.degrees - track.longitude_deg + 180.0) % 360.0 - 180.0
    assert np.max(np.abs(east)) < LONGITUDE_DEG_TOLERANCE
    assert 500 < track.altitude_km < 600  # the 550 km shell


def test_a_track_has_a_bounded_length() -> None:
    element = load_bundled_elements("starlink")[0]
    with pytest.raises(ValueError, match="TRACK_POINTS_MAX"):
        ground_track(element, START, TRACK_POINTS_MAX * 10.0, step_seconds=1.0)
    with pytest.raises(ValueError, match="aware"):
        ground_track(element, START.replace(tzinfo=None), 60.0)


def _elevation_deg(
    station_lat: float, station_lon: float, sub_lat: float, sub_lon: float, altitude_km: float
) -> float:
    """Elevation of a satellite at `altitude_km` over (sub_lat, sub_lon), seen from the station
    on a sphere: vectors, not the central-angle formula under test."""

    def unit(lat: float, lon: float) -> np.ndarray:
        la, lo = math.radians(lat), math.radians(lon)
        return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])

    up = unit(station_lat, station_lon)
    line = unit(sub_lat, sub_lon) * (WGS84_A_KM + altitude_km) - up * WGS84_A_KM
    return math.degrees(math.asin(float(np.dot(line, up)) / float(np.linalg.norm(line))))


@settings(max_examples=60, deadline=None)
@given(
    latitude=st.floats(-85, 85),
    longitude=st.floats(-180, 180),
    altitude_km=st.floats(300, 2000),
    min_elevation_deg=st.floats(0, 45),
)
def test_the_footprint_circle_is_where_the_elevation_is_the_minimum(
    latitude: float, longitude: float, altitude_km: float, min_elevation_deg: float
) -> None:
    latitudes, longitudes = footprint(latitude, longitude, altitude_km, min_elevation_deg, 13)
    assert np.all((longitudes >= -180) & (longitudes < 180))
    for lat, lon in zip(latitudes, longitudes, strict=True):
        seen = _elevation_deg(latitude, longitude, float(lat), float(lon), altitude_km)
        assert seen == pytest.approx(min_elevation_deg, abs=1e-6)


def test_the_footprint_of_the_550_km_shell() -> None:
    # arccos(R cos 10 / (R + 550)) - 10 degrees: about 1,660 km of ground.
    assert footprint_radius_deg(550.0, 10.0) == pytest.approx(14.957, abs=0.001)
    assert footprint_radius_deg(550.0, 90.0) == 0.0


def test_the_land_is_the_worlds() -> None:
    rings = load_land()
    assert len(rings) == 287
    points = np.concatenate(rings)
    assert np.all(np.abs(points[:, 0]) <= 180)
    assert np.all(np.abs(points[:, 1]) <= 90)
    outlines = [Outline(ring) for ring in rings]

    def on_land(lon: float, lat: float) -> bool:
        return any(outline.contains_point((lon, lat)) for outline in outlines)

    for place in ((2.35, 48.86), (-87.6, 41.9), (149.1, -35.3), (28.0, -26.2), (116.4, 39.9)):
        assert on_land(*place), place  # Paris, Chicago, Canberra, Johannesburg, Beijing
    for place in ((-30.0, 30.0), (-140.0, 0.0), (80.0, -30.0)):
        assert not on_land(*place), place  # the Atlantic, the Pacific, the Indian Ocean


def test_lines_are_cut_at_the_antimeridian() -> None:
    x, y = cut_at_antimeridian(np.array([170.0, 179.0, -179.0, -170.0]), np.array([1.0, 2, 3, 4]))
    assert np.isnan(x[2])
    assert np.isnan(y[2])
    assert list(x[[0, 1, 3, 4]]) == [170.0, 179.0, -179.0, -170.0]
