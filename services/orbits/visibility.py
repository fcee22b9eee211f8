"""The visibility function of a satellite from a station, on a time grid and between grid points.

Owns: f(t) = sin(elevation) - sin(minimum elevation) and its time derivative f'(t) (the
satellite is in contact exactly when f >= 0), evaluated for whole grids (stations x
satellites x times) and for scattered (satellite, station, instant) triples during refinement;
quintic Hermite interpolation of SGP4 states between grid points; and the upper bound on the
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
    teme_to_ecef,
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
class GridValues:
    """f, f', height above the horizon plane and its rate; each (stations, satellites, times)."""

    f: FloatArray
    f_rate: FloatArray
    height_km: FloatArray
    height_rate_km_s: FloatArray


def grid_values(
    position_km: FloatArray, velocity_km_s: FloatArray, stations: StationArrays
) -> GridValues:
    """Evaluate on a grid of Earth-fixed states (n, K, 3) for every station.

    One station at a time over flat (n*K,) component arrays: the temporaries stay in cache, and
    no BLAS call is made (threaded BLAS on these skinny products is slower, and erratic on a
    shared machine).
    """
    n, k, _ = position_km.shape
    x, y, z = (np.ascontiguousarray(position_km[..., i]).reshape(-1) for i in range(3))
    vx, vy, vz = (np.ascontiguousarray(velocity_km_s[..., i]).reshape(-1) for i in range(3))
    count = len(stations.sin_min_elevation)
    f = np.empty((count, n * k))
    f_rate = np.empty((count, n * k))
    height = np.empty((count, n * k))
    height_rate = np.empty((count, n * k))
    for j in range(count):
        px, py, pz = stations.position_km[j]
        ux, uy, uz = stations.up[j]
        dx, dy, dz = x - px, y - py, z - pz
        up = height[j]
        np.multiply(dx, ux, out=up)
        up += dy * uy
        up += dz * uz
        up_rate = height_rate[j]
        np.multiply(vx, ux, out=up_rate)
        up_rate += vy * uy
        up_rate += vz * uz
        range_km = dx * dx
        range_km += dy * dy
        range_km += dz * dz
        np.sqrt(range_km, out=range_km)
        sin_elevation = up / range_km
        # f' = (height' - sin(elevation) * range') / range, with range' = d.v / range.
        rate = dx * vx
        rate += dy * vy
        rate += dz * vz
        rate /= range_km
        rate *= sin_elevation
        np.subtract(up_rate, rate, out=rate)
        np.divide(rate, range_km, out=f_rate[j])
        np.subtract(sin_elevation, stations.sin_min_elevation[j], out=f[j])
    shape = (count, n, k)
    return GridValues(
        f.reshape(shape),
        f_rate.reshape(shape),
        height.reshape(shape),
        height_rate.reshape(shape),
    )


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


def hermite_basis(s: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Quintic Hermite weights (m, 6) for values and for derivatives, at fractions `s` (m,).

    The order matches `Points.ends`: r0, h v0, h^2 a0, h^2 a1, h v1, r1 (position, velocity and
    acceleration at both ends of a step h; derivative weights are per unit of s, divide by h).
    """
    s2 = s * s
    s3 = s2 * s
    s4 = s3 * s
    s5 = s4 * s
    value = np.stack(
        (
            1.0 - 10.0 * s3 + 15.0 * s4 - 6.0 * s5,
            s - 6.0 * s3 + 8.0 * s4 - 3.0 * s5,
            0.5 * s2 - 1.5 * s3 + 1.5 * s4 - 0.5 * s5,
            0.5 * s3 - s4 + 0.5 * s5,
            -4.0 * s3 + 7.0 * s4 - 3.0 * s5,
            10.0 * s3 - 15.0 * s4 + 6.0 * s5,
        ),
        axis=-1,
    )
    slope = np.stack(
        (
            -30.0 * s2 + 60.0 * s3 - 30.0 * s4,
            1.0 - 18.0 * s2 + 32.0 * s3 - 15.0 * s4,
            s - 4.5 * s2 + 6.0 * s3 - 2.5 * s4,
            1.5 * s2 - 4.0 * s3 + 2.5 * s4,
            -12.0 * s2 + 28.0 * s3 - 15.0 * s4,
            30.0 * s2 - 60.0 * s3 + 30.0 * s4,
        ),
        axis=-1,
    )
    return value, slope


@dataclass(frozen=True, slots=True)
class GridStates:
    """One chunk's SGP4 samples: TEME states (n, K+1, 3), GMST at each sample, uniform step."""

    position_teme: FloatArray
    velocity_teme: FloatArray
    theta_rad: FloatArray
    step_s: float


@dataclass(frozen=True, slots=True)
class Points:
    """Scattered (satellite, station, grid interval) triples, ready for evaluating f anywhere in
    the interval: everything is gathered once, so each refinement step is a few array passes
    and no SGP4 call.

    `ends` (m, 6, 3) holds the quintic Hermite data r0, h v0, h^2 a0, h^2 a1, h v1, r1 in TEME,
    accelerations from `gravity_km_s2`. Matching accelerations as well as positions and
    velocities makes the interpolation err by ~4 m at a 240 s step for LEO (100 m for a cubic
    on positions and velocities alone; measured against SGP4, docs/orbits.md): ~1e-4 degree of
    elevation, so even passes grazing the minimum elevation are decided as SGP4 would.
    """

    ends: FloatArray
    theta0_rad: FloatArray
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
        h = grid.step_s
        r0 = grid.position_teme[sat, k]
        r1 = grid.position_teme[sat, k + 1]
        ends = np.stack(
            (
                r0,
                h * grid.velocity_teme[sat, k],
                h * h * gravity_km_s2(r0),
                h * h * gravity_km_s2(r1),
                h * grid.velocity_teme[sat, k + 1],
                r1,
            ),
            axis=1,
        )
        return cls(
            ends,
            grid.theta_rad[k],
            stations.position_km[station],
            stations.up[station],
            stations.sin_min_elevation[station],
            h,
        )

    def take(self, index: IntArray) -> Points:
        return Points(
            self.ends[index],
            self.theta0_rad[index],
            self.station_km[index],
            self.up[index],
            self.sin_min_elevation[index],
            self.step_s,
        )

    def __len__(self) -> int:
        return len(self.theta0_rad)

    def values(self, tau_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """f and f' at `tau_s` seconds into each interval (the grid's math, per point)."""
        value, slope = hermite_basis(tau_s / self.step_s)
        r_teme = np.einsum("mk,mkj->mj", value, self.ends)
        v_teme = np.einsum("mk,mkj->mj", slope, self.ends) / self.step_s
        # GMST is linear in time to 1e-15 rad over one step.
        theta = self.theta0_rad + EARTH_ROTATION_RAD_PER_S * tau_s
        r, v = teme_to_ecef(r_teme, v_teme, theta)
        d = r - self.station_km
        height = np.einsum("ij,ij->i", d, self.up)
        range_km = np.sqrt(np.einsum("ij,ij->i", d, d))
        sin_elevation = height / range_km
        range_rate = np.einsum("ij,ij->i", d, v) / range_km
        f_rate = (np.einsum("ij,ij->i", v, self.up) - sin_elevation * range_rate) / range_km
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
