"""Contact windows: accuracy against Skyfield, no missed passes against dense sampling, limits."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from sgp4.api import SatrecArray

from orbitq.services.orbits import (
    HORIZON_HOURS_MAX,
    ONEWEB_BUNDLED_EPOCH,
    STARLINK_BUNDLED_EPOCH,
    STATIONS_BUNDLED_EPOCH,
    ContactWindow,
    ElementSet,
    GroundStation,
    compute_contacts,
    iter_contacts,
    parse_elements,
    satellite_chunks,
)
from orbitq.services.orbits import contacts as contacts_module
from orbitq.services.orbits.frames import geodetic_to_ecef, gmst_rad, teme_to_ecef, up_vector
from orbitq.services.orbits.visibility import (
    StationArrays,
    acceleration_bound_km_s2,
    interval_values,
    max_radius_and_speed,
)

from .support import (
    ISS,
    ONEWEB,
    STARLINK_SHELLS,
    bundled,
    skyfield_passes,
    stations,
    tle_lines,
)

AOS_LOS_SECONDS_MAX = 2.0
PEAK_DEG_MAX = 0.05
# Svalbard 78N, a mid-latitude, an equatorial and two southern stations.
STATION_IDS = ("svalbard", "cebreros", "singapore", "hartebeesthoek", "puntaarenas")
CASES = [
    pytest.param("stations", ISS, STATIONS_BUNDLED_EPOCH, id="iss"),
    pytest.param("oneweb", ONEWEB, ONEWEB_BUNDLED_EPOCH, id="oneweb"),
    *(
        pytest.param("starlink", norad, STARLINK_BUNDLED_EPOCH, id=f"starlink-{inclination}")
        for inclination, norad in STARLINK_SHELLS.items()
    ),
]


def _pair(windows: list[ContactWindow], node: int, station: str) -> list[ContactWindow]:
    return [w for w in windows if w.node == str(node) and w.station == station]


@pytest.mark.parametrize(("snapshot", "norad", "start"), CASES)
def test_same_passes_as_skyfield(snapshot: str, norad: int, start: datetime) -> None:
    element = bundled(snapshot)[norad]
    chosen = [stations()[i] for i in STATION_IDS]
    end = start + timedelta(hours=24)
    windows = compute_contacts([element], chosen, start, end)
    assert windows
    for station in chosen:
        ours = _pair(windows, norad, station.id)
        theirs = skyfield_passes(element, station, start, end)
        assert len(ours) == len(theirs), (station.id, ours, theirs)
        for window, (rise, set_, peak) in zip(ours, theirs, strict=True):
            assert abs((window.aos - rise).total_seconds()) <= AOS_LOS_SECONDS_MAX
            assert abs((window.los - set_).total_seconds()) <= AOS_LOS_SECONDS_MAX
            if peak > -90.0:
                assert window.max_elevation_deg == pytest.approx(peak, abs=PEAK_DEG_MAX)


def _dense_visibility(
    elements: list[ElementSet],
    chosen: list[GroundStation],
    start: datetime,
    step_s: float,
    hours: float = 24.0,
) -> np.ndarray:
    """Visible? at every `step_s` from SGP4 directly (no grid, no interpolation): (n, T, S)."""
    horizon = contacts_module._Horizon.of(start, start + timedelta(hours=hours))
    seconds = np.arange(0.0, hours * 3600.0 + step_s / 2, step_s)
    fraction = horizon.jd_fraction + seconds / 86400.0
    errors, r, v = SatrecArray([e.to_satrec() for e in elements]).sgp4(
        np.full(len(seconds), horizon.jd_whole), fraction
    )
    assert not errors.any()
    fixed, _ = teme_to_ecef(r, v, gmst_rad(horizon.jd_whole, fraction)[None, :])
    latitude = np.array([s.latitude_deg for s in chosen])
    longitude = np.array([s.longitude_deg for s in chosen])
    where = geodetic_to_ecef(latitude, longitude, np.array([s.altitude_m for s in chosen]))
    up = up_vector(latitude, longitude)
    flat = fixed.reshape(-1, 3)
    height = flat @ up.T - np.einsum("ij,ij->i", where, up)
    distance = np.sqrt(
        np.einsum("ij,ij->i", flat, flat)[:, None]
        - 2 * flat @ where.T
        + np.einsum("ij,ij->i", where, where)
    )
    minimum = np.sin(np.radians([s.min_elevation_deg for s in chosen]))
    visible: np.ndarray = height / distance >= minimum
    return visible.reshape(len(elements), len(seconds), len(chosen))


def _assert_matches_dense(
    elements: list[ElementSet],
    chosen: list[GroundStation],
    start: datetime,
    step: float,
    hours: float,
) -> list[ContactWindow]:
    """Every run of visible samples is one window and every window holding a sample is a run."""
    windows = compute_contacts(elements, chosen, start, start + timedelta(hours=hours))
    visible = _dense_visibility(elements, chosen, start, step, hours)
    for i, element in enumerate(elements):
        for j, station in enumerate(chosen):
            ours = _pair(windows, element.norad_id, station.id)
            runs = _runs(visible[i, :, j])
            sampled = [w for w in ours if _holds_sample(w, start, step)]
            assert len(sampled) == len(runs), (element.name, station.id)
            for window, (first, last) in zip(sampled, runs, strict=True):
                aos = (window.aos - start).total_seconds()
                los = (window.los - start).total_seconds()
                assert first * step - step <= aos <= first * step
                assert last * step < los <= last * step + step or los == hours * 3600
    return windows


def test_no_pass_is_missed_against_dense_sampling() -> None:
    """Every run of visible 2-second samples is a window, and every window holding a sample is a
    run; short passes that peak between the ~240 s grid points are among them."""
    step = 2.0
    everything = list(bundled("starlink").values())
    elements = [e for shell in (43, 53, 70, 98) for e in _shell(everything, shell)[:3]]
    chosen = [stations()[i] for i in (*STATION_IDS, "troll", "hawaii")]
    windows = _assert_matches_dense(elements, chosen, STARLINK_BUNDLED_EPOCH, step, 24.0)
    short = sum(1 for w in windows if (w.los - w.aos).total_seconds() < 120)
    assert short >= 3, "the sample should hold passes shorter than half a grid step"


def test_eccentric_and_high_orbits_against_dense_sampling() -> None:
    """Molniya, GTO, MEO and GEO (SGP4's deep-space branch): the perigee-sized grid step, long
    windows, and elevation dipping below the minimum for hours between two culminations (GTO
    seen from Singapore: two windows; Skyfield's find_events reports them as one)."""
    orbits = [
        (90001, 63.4, 200.0, 0.74, 270.0, 10.0, 2.006),  # Molniya
        (90002, 0.05, 80.0, 0.0002, 100.0, 30.0, 1.0027),  # GEO
        (90003, 27.0, 120.0, 0.73, 180.0, 5.0, 2.25),  # GTO
        (90004, 55.0, 20.0, 0.001, 90.0, 5.0, 2.0056),  # MEO (GPS-like)
    ]
    text = []
    for norad, inclination, raan, eccentricity, perigee, anomaly, motion in orbits:
        line1, line2 = tle_lines(
            norad, 24, 316.5, inclination, raan, eccentricity, perigee, anomaly, motion
        )
        text += [f"ORBIT-{norad}", line1, line2]
    parsed = parse_elements("\n".join(text))
    assert parsed.problems == []
    chosen = [stations()[i] for i in ("svalbard", "cebreros", "singapore", "puntaarenas")]
    start = datetime(2024, 11, 11, 12, tzinfo=UTC)
    windows = _assert_matches_dense(parsed.elements, chosen, start, 10.0, 48.0)
    gto_singapore = _pair(windows, 90003, "singapore")
    assert len(gto_singapore) == 5


def _shell(elements: list[ElementSet], inclination: int) -> list[ElementSet]:
    return [e for e in elements if round(e.inclination_deg) == inclination]


def _runs(visible: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], visible, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.nonzero(edges == 1)[0]
    ends = np.nonzero(edges == -1)[0] - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _holds_sample(window: ContactWindow, start: datetime, step: float) -> bool:
    aos = (window.aos - start).total_seconds()
    los = (window.los - start).total_seconds()
    return bool(np.ceil(aos / step) * step < los)


def test_windows_in_progress_are_cut_at_start_and_end() -> None:
    iss = bundled("stations")[ISS]
    cebreros = stations()["cebreros"]
    day = STATIONS_BUNDLED_EPOCH
    full = compute_contacts([iss], [cebreros], day, day + timedelta(hours=24))
    long_pass = max(full, key=lambda w: w.los - w.aos)
    start = long_pass.aos + timedelta(seconds=60)
    end = long_pass.los - timedelta(seconds=60)
    (cut,) = compute_contacts([iss], [cebreros], start, end)
    assert (cut.aos, cut.los) == (start, end)
    # Different grids, same sky: peaks agree to interpolation accuracy (metres, 1e-3 degree).
    assert cut.max_elevation_deg <= long_pass.max_elevation_deg + 1e-3


def test_windows_are_sorted_and_well_formed() -> None:
    elements = list(bundled("stations").values())
    day = STATIONS_BUNDLED_EPOCH
    windows = compute_contacts(elements, list(stations().values()), day, day + timedelta(hours=6))
    assert windows == sorted(windows, key=lambda w: (w.aos, w.node, w.station))
    by_id = stations()
    for window in windows:
        assert window.aos < window.los
        assert window.aos.tzinfo is not None
        minimum = by_id[window.station].min_elevation_deg
        assert minimum - 1e-6 <= window.max_elevation_deg <= 90.0


def test_limits_and_bad_times() -> None:
    iss = [bundled("stations")[ISS]]
    ground = [stations()["cebreros"]]
    day = STATIONS_BUNDLED_EPOCH
    too_long = day + timedelta(hours=HORIZON_HOURS_MAX + 1)
    with pytest.raises(ValueError, match="exceeds HORIZON_HOURS_MAX = 168 h"):
        compute_contacts(iss, ground, day, too_long)
    with pytest.raises(ValueError, match="is not after start"):
        compute_contacts(iss, ground, day, day)
    with pytest.raises(ValueError, match="HORIZON_HOURS_MAX"):
        iter_contacts(iss, ground, day, too_long)  # raised at the call, not at the first next()
    with pytest.raises(ValueError, match="aware"):
        compute_contacts(iss, ground, datetime(2024, 11, 11), datetime(2024, 11, 12))
    assert compute_contacts([], ground, day, day + timedelta(hours=1)) == []
    assert compute_contacts(iss, [], day, day + timedelta(hours=1)) == []
    # The longest horizon allowed is accepted.
    assert compute_contacts(iss, ground, day, day + timedelta(hours=HORIZON_HOURS_MAX))


def test_small_blocks_give_the_same_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    elements = list(bundled("starlink").values())[:60]
    chosen = list(stations().values())[:7]
    start = STARLINK_BUNDLED_EPOCH
    end = start + timedelta(hours=6)
    reference = compute_contacts(elements, chosen, start, end)
    monkeypatch.setattr(contacts_module, "PAIR_SAMPLES_PER_BLOCK_MAX", 2_000)
    monkeypatch.setattr(contacts_module, "STATIONS_PER_BLOCK_MAX", 3)
    chunks = satellite_chunks(elements, len(chosen), start, end)
    assert len(chunks) > 5
    assert sorted(e.norad_id for chunk in chunks for e in chunk) == sorted(
        e.norad_id for e in elements
    )
    blocked = compute_contacts(elements, chosen, start, end)
    assert len(blocked) == len(reference)
    for a, b in zip(blocked, reference, strict=True):
        assert (a.node, a.station) == (b.node, b.station)
        # A chunk's grid is its fastest satellite's, so timings differ at the millisecond level.
        assert abs(a.aos - b.aos) < timedelta(milliseconds=20)
        assert abs(a.los - b.los) < timedelta(milliseconds=20)
    streamed = [w for chunk in iter_contacts(elements, chosen, start, end) for w in chunk]
    assert sorted(streamed, key=lambda w: (w.aos, w.node, w.station)) == blocked


def test_a_decaying_satellite_ends_its_windows_where_sgp4_fails() -> None:
    iss = bundled("stations")[ISS]
    # Far too much drag at this height: SGP4 reports the orbit decayed within hours.
    doomed = dataclasses.replace(iss, norad_id=99_999, bstar=0.9, line1=None, line2=None)
    satrec = doomed.to_satrec()
    hours = np.arange(0, 24, 0.01)
    errors, _, _ = satrec.sgp4_array(
        np.full(len(hours), satrec.jdsatepoch), satrec.jdsatepochF + hours / 24
    )
    assert errors.any(), "the test needs a satellite that decays inside the horizon"
    decayed = iss.epoch + timedelta(hours=float(hours[np.argmax(errors != 0)]))
    start = iss.epoch
    windows = compute_contacts(
        [doomed, iss], list(stations().values()), start, start + timedelta(hours=24)
    )
    assert any(w.node == str(ISS) for w in windows)
    assert all(w.los <= decayed for w in windows if w.node == "99999")


def test_chunks_respect_the_memory_limits() -> None:
    elements = list(bundled("starlink").values())
    start = STARLINK_BUNDLED_EPOCH
    for station_count, hours in ((20, 24), (200, 168), (1, 1)):
        chunks = satellite_chunks(elements, station_count, start, start + timedelta(hours=hours))
        for chunk in chunks:
            step = min(contacts_module.grid_step_s(e) for e in chunk)
            samples = int(np.ceil(hours * 3600 / step)) + 1
            per_block = min(station_count, contacts_module.STATIONS_PER_BLOCK_MAX)
            assert len(chunk) * samples <= contacts_module.SATELLITE_SAMPLES_PER_BLOCK_MAX
            assert (
                len(chunk) * samples * per_block <= contacts_module.PAIR_SAMPLES_PER_BLOCK_MAX
                or len(chunk) == 1
            )


def test_start_time_is_used_exactly() -> None:
    iss = [bundled("stations")[ISS]]
    ground = [stations()["singapore"]]
    start = datetime(2024, 11, 11, 3, 17, 42, 123456, tzinfo=UTC)
    shifted = compute_contacts(iss, ground, start, start + timedelta(hours=12))
    day = compute_contacts(
        iss, ground, STATIONS_BUNDLED_EPOCH, STATIONS_BUNDLED_EPOCH + timedelta(hours=24)
    )
    inside = [w for w in day if start <= w.aos and w.los <= start + timedelta(hours=12)]
    later = [w for w in shifted if w.aos > start]
    assert len(later) == len(inside) > 0
    for a, b in zip(later, inside, strict=True):
        assert abs(a.aos - b.aos) < timedelta(milliseconds=20)
        assert abs(a.los - b.los) < timedelta(milliseconds=20)


def test_the_screen_drops_only_intervals_below_every_horizon_plane() -> None:
    """Every 10 s SGP4 sample above a station's horizon plane lies in a grid interval the screen
    kept for that station, and the kept intervals' end values are those of SGP4 itself."""
    everything = list(bundled("starlink").values())
    elements = [e for shell in (43, 53, 70, 98) for e in _shell(everything, shell)[:3]]
    chosen = [stations()[i] for i in (*STATION_IDS, "troll", "hawaii")]
    start = STARLINK_BUNDLED_EPOCH
    hours, grid_step, dense_step = 6.0, 240.0, 10.0
    horizon = contacts_module._Horizon.of(start, start + timedelta(hours=hours))
    block = StationArrays.of(chosen)

    def fixed_states(step: float) -> tuple[np.ndarray, np.ndarray]:
        seconds = np.arange(0.0, hours * 3600.0 + step / 2, step)
        fraction = horizon.jd_fraction + seconds / 86400.0
        errors, r, v = SatrecArray([e.to_satrec() for e in elements]).sgp4(
            np.full(len(seconds), horizon.jd_whole), fraction
        )
        assert not errors.any()
        return teme_to_ecef(r, v, gmst_rad(horizon.jd_whole, fraction)[None, :])

    r_grid, v_grid = fixed_states(grid_step)
    radius, speed = max_radius_and_speed(r_grid, v_grid)
    kept = interval_values(
        r_grid,
        v_grid,
        block,
        step_s=grid_step,
        acceleration_km_s2=acceleration_bound_km_s2(radius, speed),
    )
    intervals = r_grid.shape[1] - 1
    assert 0 < len(kept) < len(elements) * intervals * len(chosen) / 4
    survivors = np.zeros((len(chosen), len(elements), intervals), dtype=bool)
    survivors[kept.station, kept.sat, kept.k] = True
    r_dense, _ = fixed_states(dense_step)
    height = (
        np.einsum("ntj,sj->snt", r_dense, block.up)
        - np.einsum("sj,sj->s", block.position_km, block.up)[:, None, None]
    )
    station, sat, sample = np.nonzero(height >= 0.0)
    assert len(sample) > 0
    interval = np.minimum((sample * dense_step // grid_step).astype(np.int64), intervals - 1)
    assert survivors[station, sat, interval].all()
    # Kept intervals' end values match a direct evaluation at the grid samples.
    direct = (
        np.einsum("ntj,sj->snt", r_grid, block.up)
        - np.einsum("sj,sj->s", block.position_km, block.up)[:, None, None]
    )
    assert np.allclose(kept.height0, direct[kept.station, kept.sat, kept.k], atol=1e-9)
    assert np.allclose(kept.height1, direct[kept.station, kept.sat, kept.k + 1], atol=1e-9)


def test_a_start_in_another_zone_gives_the_same_instants() -> None:
    iss = [bundled("stations")[ISS]]
    ground = [stations()["singapore"], stations()["svalbard"]]
    start = STATIONS_BUNDLED_EPOCH
    zone = timezone(timedelta(hours=8))
    in_utc = compute_contacts(iss, ground, start, start + timedelta(hours=12))
    in_zone = compute_contacts(
        iss, ground, start.astimezone(zone), start.astimezone(zone) + timedelta(hours=12)
    )
    assert in_utc
    assert [(w.node, w.station, w.aos, w.los) for w in in_zone] == [
        (w.node, w.station, w.aos, w.los) for w in in_utc
    ]
    assert all(w.aos.tzinfo is zone for w in in_zone)
    assert all(w.aos.tzinfo is UTC for w in in_utc)
