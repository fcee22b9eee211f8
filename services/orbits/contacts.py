"""Contact windows: when each satellite is above each station's minimum elevation.

Owns: `ContactWindow`, `compute_contacts` and its streaming forms, the horizon and memory
limits, and the search: SGP4 via `SatrecArray` on a coarse grid (1/24 of an orbit at perigee
speed, 10-300 s) vectorised over satellites and times, a one-dot-product screen that drops every
(satellite, interval, station) where the satellite stays below the station's horizon plane
(`visibility.interval_values`), detection among the rest of every interval that holds a
crossing or an elevation maximum, refinement of all of them at once to a millisecond (`refine`)
on Hermite-interpolated states (no further SGP4 calls), and assembly of [AOS, LOS) windows with
their peak elevation, built in bulk.
Does not own: frames (see `frames`), the visibility function (see `visibility`), or storage.

Why no pass is missed (docs/orbits.md has the argument in full): a window either contains a grid
point, so the sign of f changes at an interval's end, or lies strictly inside one interval; then
f rises and falls inside it, so f' goes from + to - across the interval (the grid step is far
shorter than the time between two elevation extrema, about half the relative orbital period, so
an interval holds at most one). Both screens are rigorous bounds on the height above the horizon
plane, where f >= 0 needs height >= 0: the chord bound drops only intervals with f < 0
throughout, and every remaining interval with such a maximum whose satellite can reach the plane
(`visibility.height_bound_km`) has its maximum located and tested.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from sgp4.api import SatrecArray

from orbitq.ledger.gc_pause import collector_paused
from orbitq.services.orbits import refine
from orbitq.services.orbits.elements import ElementSet
from orbitq.services.orbits.frames import FloatArray, gmst_rad, teme_to_ecef
from orbitq.services.orbits.stations import GroundStation
from orbitq.services.orbits.visibility import (
    GridStates,
    IntArray,
    IntervalValues,
    Points,
    StationArrays,
    acceleration_bound_km_s2,
    elevation_deg,
    height_bound_km,
    interval_values,
    max_radius_and_speed,
    step_for_orbit_s,
)

BoolArray = npt.NDArray[np.bool_]

# SGP4 drifts by km per day from epoch and contact plans are recomputed on a rolling horizon;
# a week bounds the work of one call (and its memory, with the chunk limits below).
HORIZON_HOURS_MAX = 168.0
GRID_STEPS_PER_ORBIT = 24
GRID_STEP_SECONDS_MIN = 10.0
GRID_STEP_SECONDS_MAX = 300.0
# Memory per block: ~400 bytes per satellite-sample at the peak (SGP4 states in two frames, the
# interval polynomials and their temporaries) and at most ~80 bytes per satellite-sample-station
# (the screen's per-station temporaries; the screened intervals and the refinement arrays, ~5 %
# of the intervals for LEO). These caps keep one block near 100 MB whatever the constellation,
# the station list or the horizon.
SATELLITE_SAMPLES_PER_BLOCK_MAX = 262_144
PAIR_SAMPLES_PER_BLOCK_MAX = 1_000_000
STATIONS_PER_BLOCK_MAX = 64


@dataclass(frozen=True, slots=True)
class ContactWindow:
    """`node` (NORAD id as decimal text) sees `station` (its id) during [aos, los).

    Times are aware UTC; `max_elevation_deg` is the highest elevation inside the window.
    """

    node: str
    station: str
    aos: datetime
    los: datetime
    max_elevation_deg: float


@dataclass(frozen=True, slots=True)
class _Horizon:
    start: datetime
    seconds: float
    jd_whole: float
    jd_fraction: float

    @classmethod
    def of(cls, start: datetime, end: datetime) -> _Horizon:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be aware UTC datetimes")
        seconds = (end - start).total_seconds()
        if seconds <= 0:
            raise ValueError(f"end {end.isoformat()} is not after start {start.isoformat()}")
        hours = seconds / 3600.0
        if hours > HORIZON_HOURS_MAX:
            raise ValueError(
                f"horizon of {hours:g} h exceeds HORIZON_HOURS_MAX = {HORIZON_HOURS_MAX:g} h"
            )
        since_unix = start.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
        # Julian date split at midnight: whole part .5, fraction of the UTC day.
        day_seconds = since_unix.seconds + since_unix.microseconds / 1e6
        return cls(start, seconds, 2440587.5 + since_unix.days, day_seconds / 86400.0)


@dataclass(frozen=True, slots=True)
class _Table:
    """Windows as arrays: indices into the caller's satellites and stations, seconds from start."""

    sat: IntArray
    station: IntArray
    aos_s: FloatArray
    los_s: FloatArray
    max_elevation_deg: FloatArray

    @classmethod
    def concat(cls, tables: Sequence[_Table]) -> _Table:
        if not tables:
            empty = np.zeros(0)
            return cls(empty.astype(np.int64), empty.astype(np.int64), empty, empty, empty)
        return cls(*(np.concatenate([getattr(t, name) for t in tables]) for name in cls.__slots__))


def compute_contacts(
    elements: Sequence[ElementSet],
    stations: Sequence[GroundStation],
    start: datetime,
    end: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> list[ContactWindow]:
    """All contact windows in [start, end), sorted by (aos, node, station).

    A contact already in progress at `start` begins at `start`; one still in progress at `end`
    ends at `end`. Raises ValueError for naive times, end <= start, or a horizon over
    HORIZON_HOURS_MAX. Memory stays bounded (blocks of satellites, see the *_PER_BLOCK_MAX
    limits); the result itself is ~200 bytes per window. `progress`, when given, is called
    with (satellites searched, satellites) after each block.
    """
    horizon = _Horizon.of(start, end)
    satellites, ground = list(elements), list(stations)
    tables = []
    searched = 0
    for indices in _chunk_indices(satellites, len(ground), horizon):
        tables.append(_chunk_table(satellites, indices, ground, horizon))
        searched += len(indices)
        if progress is not None:
            progress(searched, len(satellites))
    return _Names.of(satellites, ground).windows(_Table.concat(tables), start)


def iter_contacts(
    elements: Sequence[ElementSet],
    stations: Sequence[GroundStation],
    start: datetime,
    end: datetime,
) -> Iterator[list[ContactWindow]]:
    """The same windows as `compute_contacts`, one satellite chunk at a time.

    Each list is sorted by (aos, node, station); the lists are not merged, so a caller can store
    or forward each as it comes without holding the whole plan.
    """
    # Validate now, not at the first next(): a bad horizon is the caller's error, raised here.
    horizon = _Horizon.of(start, end)
    satellites, ground = list(elements), list(stations)
    names = _Names.of(satellites, ground)
    chunks = _chunk_indices(satellites, len(ground), horizon)
    return (
        names.windows(_chunk_table(satellites, indices, ground, horizon), start)
        for indices in chunks
    )


def compute_contacts_chunk(
    elements: Sequence[ElementSet],
    stations: Sequence[GroundStation],
    start: datetime,
    end: datetime,
) -> list[ContactWindow]:
    """Windows for one caller-chosen chunk of satellites (e.g. one batch of a streamed import).

    Equivalent to `compute_contacts` on that chunk; large chunks are still processed in
    memory-bounded blocks.
    """
    return compute_contacts(elements, stations, start, end)


def satellite_chunks(
    elements: Sequence[ElementSet], station_count: int, start: datetime, end: datetime
) -> list[list[ElementSet]]:
    """How `iter_contacts` splits `elements`: satellites of similar grid step, each chunk sized so
    it fits the per-block memory limits."""
    horizon = _Horizon.of(start, end)
    return [
        [elements[i] for i in indices]
        for indices in _chunk_indices(elements, station_count, horizon)
    ]


def search_times_s(chunk: Sequence[ElementSet], start: datetime, end: datetime) -> FloatArray:
    """Seconds from `start` at which `compute_contacts` propagates one chunk of `satellite_chunks`
    with SGP4 (the chunk's finest grid step): the samples the search cannot do without, which
    bench/contacts.py propagates alone as the floor the whole job is measured against."""
    horizon = _Horizon.of(start, end)
    return _search_times(horizon, chunk)


def _search_times(horizon: _Horizon, chunk: Sequence[ElementSet]) -> FloatArray:
    samples = _sample_count(horizon.seconds, min(grid_step_s(e) for e in chunk))
    return np.linspace(0.0, horizon.seconds, samples)


def grid_step_s(element: ElementSet) -> float:
    """The search grid step for one satellite (see the module docstring)."""
    step = step_for_orbit_s(
        element.mean_motion_rev_per_day, element.eccentricity, GRID_STEPS_PER_ORBIT
    )
    return min(max(step, GRID_STEP_SECONDS_MIN), GRID_STEP_SECONDS_MAX)


def _chunk_indices(
    elements: Sequence[ElementSet], station_count: int, horizon: _Horizon
) -> list[IntArray]:
    if not elements or station_count == 0:
        return []
    steps = np.array([grid_step_s(e) for e in elements])
    order = np.argsort(steps, kind="stable")
    stations_per_block = min(station_count, STATIONS_PER_BLOCK_MAX)
    chunks: list[IntArray] = []
    first = 0
    while first < len(order):
        # Sorted by step, so the chunk's first satellite has the smallest step: the chunk's grid.
        samples = _sample_count(horizon.seconds, float(steps[order[first]]))
        size = max(
            1,
            min(
                SATELLITE_SAMPLES_PER_BLOCK_MAX // samples,
                PAIR_SAMPLES_PER_BLOCK_MAX // (samples * stations_per_block),
            ),
        )
        chunks.append(order[first : first + size].astype(np.int64))
        first += size
    return chunks


def _sample_count(seconds: float, step_s: float) -> int:
    return max(1, math.ceil(seconds / step_s - 1e-9)) + 1


def _chunk_table(
    elements: list[ElementSet], indices: IntArray, stations: list[GroundStation], horizon: _Horizon
) -> _Table:
    """Propagate one chunk of satellites once, then search it against each block of stations."""
    chunk = [elements[int(i)] for i in indices]
    times = _search_times(horizon, chunk)
    samples = len(times)
    fraction = horizon.jd_fraction + times / 86400.0
    errors, r_teme, v_teme = SatrecArray([e.to_satrec() for e in chunk]).sgp4(
        np.full(samples, horizon.jd_whole), fraction
    )
    # Where SGP4 fails (decayed orbit) the satellite is treated as invisible: NaN never passes
    # the f >= 0 test, and interpolation next to a NaN sample stays NaN.
    failed = errors != 0
    r_teme[failed] = np.nan
    v_teme[failed] = np.nan
    theta = gmst_rad(horizon.jd_whole, fraction)
    r_fixed, v_fixed = teme_to_ecef(r_teme, v_teme, theta[None, :])
    radius, speed = max_radius_and_speed(r_fixed, v_fixed)
    states = GridStates.of(r_teme, v_teme, theta, horizon.seconds / (samples - 1))
    search = _Search(states, acceleration_bound_km_s2(radius, speed), samples)
    tables: list[_Table] = []
    for first in range(0, len(stations), STATIONS_PER_BLOCK_MAX):
        block = StationArrays.of(stations[first : first + STATIONS_PER_BLOCK_MAX])
        values = interval_values(
            r_fixed,
            v_fixed,
            block,
            step_s=states.step_s,
            acceleration_km_s2=search.acceleration_km_s2,
        )
        table = search.run(values, block)
        tables.append(
            _Table(
                indices[table.sat],
                table.station + first,
                table.aos_s,
                table.los_s,
                table.max_elevation_deg,
            )
        )
    return _Table.concat(tables)


@dataclass(frozen=True, slots=True)
class _Events:
    """Crossings of f through zero; `position` orders them within one (satellite, station).

    Positions: 0 for "visible at start", 1 + 2k and 2 + 2k for the (at most two) crossings in
    grid interval k, 2K + 1 for "visible at end". Sorting by position rather than by time makes
    the alternation rise/set/rise/... hold by construction.
    """

    sat: IntArray
    station: IntArray
    time_s: FloatArray
    rising: BoolArray
    position: IntArray
    f_at: FloatArray

    @classmethod
    def concat(cls, parts: Sequence[_Events]) -> _Events:
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in cls.__slots__))


@dataclass(frozen=True, slots=True)
class _Extrema:
    """Refined elevation extrema: in which screened interval (`row`), where in it (grid interval
    k, offset tau) and the value of f."""

    row: IntArray
    sat: IntArray
    k: IntArray
    station: IntArray
    tau_s: FloatArray
    f: FloatArray


@dataclass(frozen=True, slots=True)
class _Bracket:
    """Intervals [lo, hi] (seconds into grid interval k) each holding exactly one crossing, with
    f and f' at both ends (f' NaN where unknown)."""

    sat: IntArray
    k: IntArray
    station: IntArray
    lo: FloatArray
    hi: FloatArray
    f_lo: FloatArray
    f_hi: FloatArray
    rate_lo: FloatArray
    rate_hi: FloatArray
    lo_visible: BoolArray
    position: IntArray

    @classmethod
    def concat(cls, parts: Sequence[_Bracket]) -> _Bracket:
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in cls.__slots__))


@dataclass(frozen=True, slots=True)
class _Search:
    """Search one chunk's screened intervals against one block of stations: detect, refine,
    assemble. `samples` is the chunk's grid length (K+1)."""

    states: GridStates
    acceleration_km_s2: float
    samples: int

    def run(self, values: IntervalValues, stations: StationArrays) -> _Table:
        seen0, seen1 = values.f0 >= 0.0, values.f1 >= 0.0
        peaks = self._extrema(self._peak_rows(values, seen0 | seen1), values, stations, +1.0)
        valleys = self._extrema(
            np.flatnonzero((values.rate0 < 0.0) & (values.rate1 >= 0.0) & seen0 & seen1),
            values,
            stations,
            -1.0,
        )
        crossings = np.flatnonzero(seen0 != seen1)
        events = _Events.concat(
            [
                self._boundary_events(values, seen0, seen1),
                self._crossing_events(values, crossings, (peaks, valleys), stations),
            ]
        )
        return self._assemble(events, peaks, len(stations.sin_min_elevation), stations)

    def _peak_rows(self, values: IntervalValues, seen: BoolArray) -> IntArray:
        """Intervals holding an elevation maximum that is in a window or might reach one.

        Maxima inside windows are kept for the peak elevation; the others only when the
        satellite can rise above the station's horizon plane there (a rigorous bound).
        """
        rows = np.flatnonzero((values.rate0 > 0.0) & (values.rate1 <= 0.0))
        bound = height_bound_km(
            values.height0[rows],
            values.height_rate0[rows],
            values.height1[rows],
            values.height_rate1[rows],
            step_s=self.states.step_s,
            acceleration_km_s2=self.acceleration_km_s2,
        )
        return rows[seen[rows] | (bound >= 0.0)]

    def _extrema(
        self, rows: IntArray, values: IntervalValues, stations: StationArrays, sign: float
    ) -> _Extrema:
        sat, k, station = values.sat[rows], values.k[rows], values.station[rows]
        points = Points.gather((sat, k, station), self.states, stations)
        tau, f = refine.extrema(
            points,
            (np.zeros(len(rows)), np.full(len(rows), self.states.step_s)),
            (values.rate0[rows], values.rate1[rows]),
            sign,
        )
        return _Extrema(rows, sat, k, station, tau, f)

    def _boundary_events(
        self, values: IntervalValues, seen0: BoolArray, seen1: BoolArray
    ) -> _Events:
        """Windows open at the start of the horizon, and windows still open at its end."""
        last = self.samples - 1
        first_rows = np.flatnonzero(seen0 & (values.k == 0))
        last_rows = np.flatnonzero(seen1 & (values.k == last - 1))
        count0, count1 = len(first_rows), len(last_rows)
        return _Events(
            np.concatenate([values.sat[first_rows], values.sat[last_rows]]),
            np.concatenate([values.station[first_rows], values.station[last_rows]]),
            np.concatenate([np.zeros(count0), np.full(count1, last * self.states.step_s)]),
            np.concatenate([np.ones(count0, bool), np.zeros(count1, bool)]),
            np.concatenate([np.zeros(count0, np.int64), np.full(count1, 2 * last + 1, np.int64)]),
            np.concatenate([values.f0[first_rows], values.f1[last_rows]]),
        )

    def _crossing_events(
        self,
        values: IntervalValues,
        crossings: IntArray,
        extrema: tuple[_Extrema, _Extrema],
        stations: StationArrays,
    ) -> _Events:
        """Every bracket of one crossing, refined together.

        A sign change of f across an interval is one bracket. An unseen-ends interval whose
        maximum reaches f >= 0 is two (rise before the peak, set after); a seen-ends interval
        whose minimum dips below 0 is two the other way round.
        """
        step = self.states.step_s
        peaks, valleys = extrema
        count = len(crossings)
        k = values.k[crossings]
        parts = [
            _Bracket(
                values.sat[crossings],
                k,
                values.station[crossings],
                np.zeros(count),
                np.full(count, step),
                values.f0[crossings],
                values.f1[crossings],
                values.rate0[crossings],
                values.rate1[crossings],
                values.f0[crossings] >= 0.0,
                1 + 2 * k,
            )
        ]
        unseen = (values.f0[peaks.row] < 0.0) & (values.f1[peaks.row] < 0.0)
        parts += _split(peaks, unseen & (peaks.f >= 0.0), values, step, rises_first=True)
        parts += _split(valleys, valleys.f < 0.0, values, step, rises_first=False)
        bracket = _Bracket.concat(parts)
        points = Points.gather((bracket.sat, bracket.k, bracket.station), self.states, stations)
        tau = refine.crossings(
            points,
            (bracket.lo, bracket.hi),
            (bracket.f_lo, bracket.f_hi),
            (bracket.rate_lo, bracket.rate_hi),
            bracket.lo_visible,
        )
        return _Events(
            bracket.sat,
            bracket.station,
            bracket.k * step + tau,
            ~bracket.lo_visible,
            bracket.position,
            np.zeros(len(tau)),
        )

    def _assemble(
        self,
        events: _Events,
        peaks: _Extrema,
        station_count: int,
        stations: StationArrays,
    ) -> _Table:
        """Pair rises with sets into windows and give each its highest refined elevation."""
        samples = self.samples
        pair = events.sat * station_count + events.station
        order = np.argsort(pair * (2 * samples) + events.position, kind="stable")
        rising = events.rising[order]
        pair = pair[order]
        # Invariant: within each (satellite, station), rises and sets alternate starting with a
        # rise. A violation is a bug in the search, never bad input: stop loudly.
        assert len(order) % 2 == 0, "unpaired contact events"
        assert rising[0::2].all(), "a window does not open with a rise"
        assert not rising[1::2].any(), "a window does not close with a set"
        assert (pair[0::2] == pair[1::2]).all(), "a window spans two satellite-station pairs"
        opened, closed = order[0::2], order[1::2]
        aos, los = events.time_s[opened], events.time_s[closed]
        best = np.fmax(events.f_at[opened], events.f_at[closed])
        step = self.states.step_s
        span = (samples + 1) * step
        window_pair = pair[0::2]
        peak_key = np.asarray(
            (peaks.sat * station_count + peaks.station) * span + peaks.k * step + peaks.tau_s,
            dtype=np.float64,
        )
        window_keys = (window_pair * span + aos, window_pair * span + los)
        _raise_to_peaks(best, window_keys, peak_key, peaks.f)
        keep = los > aos
        station = events.station[opened][keep]
        return _Table(
            events.sat[opened][keep],
            station,
            aos[keep],
            los[keep],
            elevation_deg(best[keep], stations.sin_min_elevation[station]),
        )


def _split(
    extrema: _Extrema, mask: BoolArray, values: IntervalValues, step_s: float, *, rises_first: bool
) -> list[_Bracket]:
    """Two brackets around an extremum that crosses zero: [start, extremum], [extremum, end]."""
    row = extrema.row[mask]
    sat, k, station = extrema.sat[mask], extrema.k[mask], extrema.station[mask]
    tau, f = extrema.tau_s[mask], extrema.f[mask]
    count = len(sat)
    unknown = np.full(count, np.nan)  # f' at the extremum is ~0: no Newton step from there
    before = _Bracket(
        sat,
        k,
        station,
        np.zeros(count),
        tau,
        values.f0[row],
        f,
        values.rate0[row],
        unknown,
        np.full(count, not rises_first),
        1 + 2 * k,
    )
    after = _Bracket(
        sat,
        k,
        station,
        tau,
        np.full(count, step_s),
        f,
        values.f1[row],
        unknown,
        values.rate1[row],
        np.full(count, rises_first),
        2 + 2 * k,
    )
    return [before, after]


def _raise_to_peaks(
    best: FloatArray,
    window_keys: tuple[FloatArray, FloatArray],
    peak_key: FloatArray,
    peak_f: FloatArray,
) -> None:
    """Raise each window's best f to the refined maxima that fall inside it (in place).

    Keys are pair * span + seconds (span longer than the horizon), so one sorted array orders
    the windows of every pair and a peak finds its window by binary search.
    """
    aos_key, los_key = window_keys
    if len(best) == 0 or len(peak_key) == 0:
        return
    window = np.searchsorted(aos_key, peak_key, side="right") - 1
    inside = (window >= 0) & np.isfinite(peak_f)
    inside &= peak_key <= los_key[np.maximum(window, 0)]
    np.fmax.at(best, window[inside], peak_f[inside])


@dataclass(frozen=True, slots=True)
class _Names:
    """Node and station names, with dense lexicographic ranks so that sorting by numbers sorts
    exactly as sorting by the strings would."""

    nodes: list[str]
    stations: list[str]
    node_rank: IntArray
    station_rank: IntArray

    @classmethod
    def of(cls, elements: Sequence[ElementSet], stations: Sequence[GroundStation]) -> _Names:
        nodes = [str(element.norad_id) for element in elements]
        ids = [station.id for station in stations]
        _, node_rank = np.unique(np.array(nodes, dtype=str), return_inverse=True)
        _, station_rank = np.unique(np.array(ids, dtype=str), return_inverse=True)
        return cls(nodes, ids, node_rank.astype(np.int64), station_rank.astype(np.int64))

    def windows(self, table: _Table, start: datetime) -> list[ContactWindow]:
        """ContactWindow objects sorted by (aos, node, station), times rounded to microseconds."""
        aos_us = np.rint(table.aos_s * 1e6).astype(np.int64)
        los_us = np.rint(table.los_s * 1e6).astype(np.int64)
        keep = los_us > aos_us
        sat, station = table.sat[keep], table.station[keep]
        aos_us, los_us = aos_us[keep], los_us[keep]
        order = np.lexsort((self.station_rank[station], self.node_rank[sat], aos_us))
        node_names = np.array(self.nodes, dtype=object)
        station_names = np.array(self.stations, dtype=object)
        # Built column by column with map() (no per-window Python frame) and with the cyclic
        # GC paused: ~0.7 M acyclic objects would otherwise trigger dozens of collections that
        # each rescan every object built so far (measured: 2.6 s -> 0.6 s for the bench job).
        with collector_paused():
            return list(
                map(
                    ContactWindow,
                    node_names[sat[order]].tolist(),
                    station_names[station[order]].tolist(),
                    _datetimes(start, aos_us[order]),
                    _datetimes(start, los_us[order]),
                    table.max_elevation_deg[keep][order].tolist(),
                )
            )


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _datetimes(start: datetime, offsets_us: IntArray) -> list[datetime]:
    """start + offset for each offset in microseconds, exactly as `start + timedelta` would be.

    For UTC starts, one C call per value: the instant as float seconds since 1970 (an integer
    count of microseconds divided once, so within 1.2e-7 s of the exact value for this century,
    which fromtimestamp rounds back to the exact microsecond). Other zones keep wall-clock
    arithmetic, which `fromtimestamp` would not reproduce across a DST change.
    """
    if start.tzinfo is not UTC:
        return [start + timedelta(microseconds=us) for us in offsets_us.tolist()]
    base_us = (start - _UNIX_EPOCH) // timedelta(microseconds=1)
    seconds = (offsets_us + base_us) / 1e6
    return list(map(datetime.fromtimestamp, seconds.tolist(), itertools.repeat(UTC)))
