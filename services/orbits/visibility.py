"""The visibility function of a satellite from a station, on a time grid and between grid points.

Owns: f(t) = sin(elevation) - sin(minimum elevation) and its time derivative f'(t) (the
satellite is in contact exactly when f >= 0), evaluated at both ends of every grid interval
that survives a screen (one dot product per sample and station: intervals where the satellite
stays below the station's horizon plane are dropped unevaluated) and at scattered (satellite,
station, instant) triples during refinement; quintic Hermite interpolation of SGP4 states between
grid points (one polynomial per interval, built once per chunk); and the upper bound on the
satellite's height above a station's horizon plane between two grid points that lets the
search skip elevation maxima that cannot reach the horizon.
Does not own: choosing the grid, finding crossings, or assembling windows (see `contacts`).

Why sin(elevation): it is a smooth function of the state (elevation itself has a kink at the
zenith), it needs no trigonometry to evaluate, and its extrema are those of elevation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from orbitq.services.orbits.frames import (
    EARTH_ROTATION_RAD_PER_S,
    FloatArray,
    geodetic_to_ecef,
    up_vector,
)
from orbitq.services.orbits.stations import GroundStation

IntArray = npt.NDArray[np.int64]

# Gravity at the Earth's surface including J2 (9.83 m/s^2 at the poles) rounded up, in km/s^2.
# With the rotating frame's centrifugal and Coriolis terms it bounds every satellite's
# acceleration in Earth-fixed axes, hence the second derivative of its height above a plane.
GRAVITY_KM_S2_MAX = 0.0100
# SGP4's gravity constants (WGS-72), for the acceleration the interpolation matches.
WGS72_MU_KM3_S2 = 398600.8
WGS72_RADIUS_KM = 6378.135
WGS72_J2 = 0.001082616
# Sampled extremes (radius, speed) stand for the whole interval with this margin.
SAMPLED_EXTREME_MARGIN = 1.1


@dataclass(frozen=True, slots=True)
class StationArrays:
    """Stations as arrays: Earth-fixed position (S, 3) km, up vector (S, 3), sin(min elevation)."""

    position_km: FloatArray
    up: FloatArray
    sin_min_elevation: FloatArray

    @classmethod
    def of(cls, stations: list[GroundStation]) -> StationArrays:
        latitude = np.array([s.latitude_deg for s in stations], dtype=np.float64)
        longitude = np.array([s.longitude_deg for s in stations], dtype=np.float64)
        altitude = np.array([s.altitude_m for s in stations], dtype=np.float64)
        minimum = np.radians(np.array([s.min_elevation_deg for s in stations], dtype=np.float64))
        return cls(
            geodetic_to_ecef(latitude, longitude, altitude).reshape(-1, 3),
            up_vector(latitude, longitude).reshape(-1, 3),
            np.sin(minimum),
        )


@dataclass(frozen=True, slots=True)
class IntervalValues:
    """The grid intervals (satellite `sat`, interval `k` from sample k to k+1, `station`) that
    survived the screen of `interval_values`, with f, f', the height above the station's horizon
    plane and its rate at both ends (suffix 0: sample k, suffix 1: sample k+1).

    Ordered by (station, satellite, k). Every interval left out is one where the satellite stays
    below the station's horizon plane throughout, so f < 0 there: no window, no crossing, no
    maximum that could reach the minimum elevation.
    """

    sat: IntArray
    k: IntArray
    station: IntArray
    f0: FloatArray
    f1: FloatArray
    rate0: FloatArray
    rate1: FloatArray
    height0: FloatArray
    height1: FloatArray
    height_rate0: FloatArray
    height_rate1: FloatArray

    def __len__(self) -> int:
        return len(self.sat)


def interval_values(
    position_km: FloatArray,
    velocity_km_s: FloatArray,
    stations: StationArrays,
    *,
    step_s: float,
    acceleration_km_s2: float,
) -> IntervalValues:
    """Screen every grid interval of Earth-fixed states (n, K+1, 3) against every station, then
    evaluate the survivors exactly.

    The screen costs one dot product per sample and station. The height above a station's
    horizon plane has |height''| <= `acceleration_km_s2` (the plane is fixed in Earth-fixed
    axes, see `acceleration_bound_km_s2`), so inside an interval of `step_s` it exceeds the
    chord between its end values by at most A step^2 / 8 (77 km at 240 s for LEO). Where even
    max(h0, h1) + A step^2 / 8 is negative the satellite is below the plane throughout, and
    f < 0 since every minimum elevation is >= 0. About 1 interval in 20 survives for LEO with
    20 stations; the rest never costs more than the screen. One station at a time over flat
    (n*(K+1),) component arrays: the temporaries stay in cache, and no BLAS call is made
    (threaded BLAS on these skinny products is slower, and erratic on a shared machine).
    """
    n, samples, _ = position_km.shape
    x, y, z = (np.ascontiguousarray(position_km[..., i]).reshape(-1) for i in range(3))
    slack = acceleration_km_s2 * step_s * step_s / 8.0
    sats: list[IntArray] = []
    ks: list[IntArray] = []
    station_index: list[IntArray] = []
    height = np.empty(n * samples)
    for j in range(len(stations.sin_min_elevation)):
        ux, uy, uz = stations.up[j]
        np.multiply(x, ux, out=height)
        height += y * uy
        height += z * uz
        height -= float(stations.position_km[j] @ stations.up[j])
        grid = height.reshape(n, samples)
        highest_end = np.maximum(grid[:, :-1], grid[:, 1:])
        sat, k = np.nonzero(highest_end >= -slack)
        sats.append(sat.astype(np.int64))
        ks.append(k.astype(np.int64))
        station_index.append(np.full(len(sat), j, dtype=np.int64))
    sat, k, station = (np.concatenate(parts) for parts in (sats, ks, station_index))
    components = (
        x,
        y,
        z,
        *(np.ascontiguousarray(velocity_km_s[..., i]).reshape(-1) for i in range(3)),
    )
    first = sat * samples + k
    start = _sample_values(components, stations, first, station)
    end = _sample_values(components, stations, first + 1, station)
    return IntervalValues(
        sat, k, station, start[0], end[0], start[1], end[1], start[2], end[2], start[3], end[3]
    )


def _sample_values(
    components: tuple[FloatArray, ...],
    stations: StationArrays,
    flat_sample: IntArray,
    station: IntArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """f, f', height and height' at grid samples (flat index satellite * (K+1) + k) from the
    flat x, y, z, vx, vy, vz arrays; one-dimensional takes and per-component passes."""
    x, y, z, vx, vy, vz = (np.take(c, flat_sample) for c in components)
    position = stations.position_km.T
    up = stations.up.T
    dx = x - np.take(position[0], station)
    dy = y - np.take(position[1], station)
    dz = z - np.take(position[2], station)
    ux, uy, uz = (np.take(u, station) for u in up)
    height = dx * ux + dy * uy + dz * uz
    height_rate = vx * ux + vy * uy + vz * uz
    range_km = np.sqrt(dx * dx + dy * dy + dz * dz)
    sin_elevation = height / range_km
    # f' = (height' - sin(elevation) * range') / range, with range' = d.v / range.
    range_rate = (dx * vx + dy * vy + dz * vz) / range_km
    f_rate = (height_rate - sin_elevation * range_rate) / range_km
    f = sin_elevation - np.take(stations.sin_min_elevation, station)
    return f, f_rate, height, height_rate


def gravity_km_s2(position_km: FloatArray) -> FloatArray:
    """Two-body + J2 acceleration (..., 3) in TEME with SGP4's WGS-72 constants.

    Only feeds the interpolation below: SGP4's own motion differs from it by drag and higher
    harmonics, which over one grid step move the interpolated position by metres at most.
    """
    x, y, z = position_km[..., 0], position_km[..., 1], position_km[..., 2]
    radius2 = np.einsum("...i,...i->...", position_km, position_km)
    radius = np.sqrt(radius2)
    j2_term = 1.5 * WGS72_J2 * WGS72_RADIUS_KM**2 / radius2
    z2 = z * z / radius2
    scale = -WGS72_MU_KM3_S2 / (radius2 * radius)
    horizontal = scale * (1.0 + j2_term * (1.0 - 5.0 * z2))
    return np.stack(
        (horizontal * x, horizontal * y, scale * (1.0 + j2_term * (3.0 - 5.0 * z2)) * z), axis=-1
    )


# Quintic Hermite interpolation in monomial form: row p holds the weights of the end data
# r0, h v0, h^2 a0, h^2 a1, h v1, r1 in the coefficient of s^p (s = tau / h in [0, 1]).
# The same polynomial as the Hermite basis, evaluated by Horner's rule in 5 multiply-adds.
HERMITE_MONOMIAL = np.array(
    [
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.5, 0.0, 0.0, 0.0],
        [-10.0, -6.0, -1.5, 0.5, -4.0, 10.0],
        [15.0, 8.0, 1.5, -1.0, 7.0, -15.0],
        [-6.0, -3.0, -0.5, 0.5, -3.0, 6.0],
    ]
)
HERMITE_DEGREE = 5


@dataclass(frozen=True, slots=True)
class GridStates:
    """One chunk's SGP4 samples as interpolating polynomials, one per grid interval.

    `coefficients` (6, 3, n*K) holds, for satellite i's interval k at column i*K + k, the
    quintic Hermite interpolant of the interval's end data r, v and a (accelerations from
    `gravity_km_s2`) in s = tau / h, coefficient of s^p in row p, rotated by GMST at the
    interval's start. Matching accelerations as well as positions and velocities makes it err
    by ~4 m at a 240 s step for LEO (100 m for a cubic on positions and velocities alone;
    measured against SGP4, docs/orbits.md): ~1e-4 degree of elevation, so even passes grazing
    the minimum elevation are decided as SGP4 would. Built once per chunk with whole-grid array
    passes; refinement then only gathers columns.
    """

    coefficients: FloatArray
    intervals: int
    step_s: float

    @classmethod
    def of(
        cls,
        position_teme: FloatArray,
        velocity_teme: FloatArray,
        theta_rad: FloatArray,
        step_s: float,
    ) -> GridStates:
        """From TEME states (n, K+1, 3) and GMST (K+1,) at the samples."""
        n, samples, _ = position_teme.shape
        intervals = samples - 1
        h = step_s
        acceleration = gravity_km_s2(position_teme)
        teme = np.zeros((HERMITE_DEGREE + 1, 3, n, intervals))
        for axis in range(3):
            r = position_teme[..., axis]
            hv = h * velocity_teme[..., axis]
            hha = (h * h) * acceleration[..., axis]
            ends = (r[:, :-1], hv[:, :-1], hha[:, :-1], hha[:, 1:], hv[:, 1:], r[:, 1:])
            # Spelled out rather than a matmul, which would start BLAS threads on a shared
            # machine; the zero weights are skipped.
            for power, weights in enumerate(HERMITE_MONOMIAL):
                for end, weight in enumerate(weights):
                    if weight != 0.0:
                        teme[power, axis] += weight * ends[end]
        cos, sin = np.cos(theta_rad[:-1]), np.sin(theta_rad[:-1])
        coefficients = np.empty_like(teme)
        coefficients[:, 0] = cos * teme[:, 0] + sin * teme[:, 1]
        coefficients[:, 1] = cos * teme[:, 1] - sin * teme[:, 0]
        coefficients[:, 2] = teme[:, 2]
        return cls(coefficients.reshape(HERMITE_DEGREE + 1, 3, -1), intervals, step_s)


@dataclass(frozen=True, slots=True)
class Points:
    """Scattered (satellite, station, grid interval) triples, ready for evaluating f anywhere in
    the interval: everything is gathered once, so each refinement step is a few array passes
    and no SGP4 call.

    `coefficients` (6, 3, m) are the intervals' polynomials (see `GridStates`): only the
    Earth's turn during tau (under 0.022 rad) is left for each evaluation. Component-major
    layout, so every array pass in `values` runs over contiguous (m,) rows.
    """

    coefficients: FloatArray
    station_km: FloatArray
    up: FloatArray
    sin_min_elevation: FloatArray
    step_s: float

    @classmethod
    def gather(
        cls,
        where: tuple[IntArray, IntArray, IntArray],
        grid: GridStates,
        stations: StationArrays,
    ) -> Points:
        sat, k, station = where
        columns = grid.coefficients.reshape(-1, grid.coefficients.shape[-1])
        coefficients = np.take(columns, sat * grid.intervals + k, axis=1)
        return cls(
            coefficients.reshape(HERMITE_DEGREE + 1, 3, -1),
            np.ascontiguousarray(stations.position_km[station].T),
            np.ascontiguousarray(stations.up[station].T),
            stations.sin_min_elevation[station],
            grid.step_s,
        )

    def take(self, index: IntArray) -> Points:
        # np.take along the last axis: ~3x faster than fancy indexing for these layouts.
        coefficients = np.take(self.coefficients.reshape(-1, len(self)), index, axis=1)
        return Points(
            coefficients.reshape(HERMITE_DEGREE + 1, 3, len(index)),
            np.take(self.station_km, index, axis=1),
            np.take(self.up, index, axis=1),
            np.take(self.sin_min_elevation, index),
            self.step_s,
        )

    def __len__(self) -> int:
        return len(self.sin_min_elevation)

    def values(self, tau_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """f and f' at `tau_s` seconds into each interval (the grid's math, per point)."""
        s = tau_s / self.step_s
        c = self.coefficients
        position = c[HERMITE_DEGREE].copy()
        velocity = HERMITE_DEGREE * c[HERMITE_DEGREE]
        for power in range(HERMITE_DEGREE - 1, 0, -1):
            position *= s
            position += c[power]
            velocity *= s
            velocity += power * c[power]
        position *= s
        position += c[0]
        velocity /= self.step_s
        # The Earth's turn since the interval's start; GMST is linear in time to 1e-15 rad here.
        turn = EARTH_ROTATION_RAD_PER_S * tau_s
        cos, sin = np.cos(turn), np.sin(turn)
        x0, y0, z = position
        x = cos * x0 + sin * y0
        y = cos * y0 - sin * x0
        omega = EARTH_ROTATION_RAD_PER_S
        vx = cos * velocity[0] + sin * velocity[1] + omega * y
        vy = cos * velocity[1] - sin * velocity[0] - omega * x
        vz = velocity[2]
        dx = x - self.station_km[0]
        dy = y - self.station_km[1]
        dz = z - self.station_km[2]
        ux, uy, uz = self.up
        height = dx * ux + dy * uy + dz * uz
        range_km = np.sqrt(dx * dx + dy * dy + dz * dz)
        sin_elevation = height / range_km
        range_rate = (dx * vx + dy * vy + dz * vz) / range_km
        f_rate = (vx * ux + vy * uy + vz * uz - sin_elevation * range_rate) / range_km
        return sin_elevation - self.sin_min_elevation, f_rate


def acceleration_bound_km_s2(radius_km_max: float, speed_km_s_max: float) -> float:
    """Bound on |acceleration| in Earth-fixed axes: gravity + centrifugal + Coriolis."""
    omega = EARTH_ROTATION_RAD_PER_S
    radius = radius_km_max * SAMPLED_EXTREME_MARGIN
    speed = speed_km_s_max * SAMPLED_EXTREME_MARGIN
    return GRAVITY_KM_S2_MAX + omega * omega * radius + 2.0 * omega * speed


def height_bound_km(
    height0: FloatArray,
    rate0: FloatArray,
    height1: FloatArray,
    rate1: FloatArray,
    *,
    step_s: float,
    acceleration_km_s2: float,
) -> FloatArray:
    """Upper bound of the height above the horizon plane inside each grid interval.

    With |height''| <= A, height(tau) lies under both parabolas P0 (from the left end's value and
    rate) and P1 (from the right end's). P0 - P1 is non-decreasing in tau, so min(P0, P1) is P0
    up to their meeting point and P1 after it, and its maximum is at an end or at that point.
    A satellite can be in contact only where height >= range * sin(min elevation) >= 0.
    """
    a = acceleration_km_s2
    h = step_s
    slope = rate0 - rate1 + a * h
    offset = height0 - height1 + rate1 * h - 0.5 * a * h * h
    with np.errstate(divide="ignore", invalid="ignore"):
        meet = np.clip(-offset / np.maximum(slope, 1e-300), 0.0, h)
    at_meet = np.minimum(
        height0 + rate0 * meet + 0.5 * a * meet * meet,
        height1 - rate1 * (h - meet) + 0.5 * a * (h - meet) ** 2,
    )
    return np.maximum(np.maximum(height0, height1), at_meet)


def max_radius_and_speed(position_km: FloatArray, velocity_km_s: FloatArray) -> tuple[float, float]:
    """Largest sampled radius and Earth-fixed speed (NaN samples of failed propagation ignored)."""
    radius = np.sqrt(np.einsum("...i,...i->...", position_km, position_km))
    speed = np.sqrt(np.einsum("...i,...i->...", velocity_km_s, velocity_km_s))
    if not np.isfinite(radius).any():
        return 0.0, 0.0
    return float(np.nanmax(radius)), float(np.nanmax(speed))


def elevation_deg(f: FloatArray, sin_min_elevation: FloatArray) -> FloatArray:
    """Elevation in degrees back from f."""
    return np.degrees(np.arcsin(np.clip(f + sin_min_elevation, -1.0, 1.0)))


def step_for_orbit_s(
    mean_motion_rev_per_day: float, eccentricity: float, steps_per_orbit: int
) -> float:
    """Time for 1/steps_per_orbit of a turn at perigee angular speed (before clamping).

    At perigee the true anomaly advances fastest, n (1+e)^2 / (1-e^2)^1.5; sizing the step from
    it keeps eccentric orbits as finely sampled near perigee as circular ones are everywhere.
    """
    e = min(max(eccentricity, 0.0), 0.999)
    rate = mean_motion_rev_per_day * (1.0 + e) ** 2 / (1.0 - e * e) ** 1.5
    return 86400.0 / (rate * steps_per_orbit) if rate > 0 else math.inf
