"""Reference frames: SGP4's TEME to Earth-fixed, and ground stations on the WGS-84 ellipsoid.

Owns: Greenwich mean sidereal time (IAU 1982, the angle SGP4's TEME frame is defined against),
the TEME -> Earth-fixed rotation of positions and velocities, and WGS-84 geodetic -> Earth-fixed
station positions with their local "up" (the ellipsoid normal that elevation is measured from).
Pure numpy; kilometres, km/s, radians.
Does not own: propagation or visibility (see `contacts`).

Approximations, each bounded in docs/orbits.md:
- UT1 is taken equal to UTC. |UT1-UTC| < 0.9 s by IERS rule (under 0.1 s in 2024-2025), which
  turns the Earth by at most 13.5 arcsec: <= 420 m at the equator, <= ~0.3 s of AOS/LOS for LEO.
- Polar motion is neglected (the result is the pseudo-Earth-fixed frame, PEF). The pole wanders
  by under 0.5 arcsec, i.e. <= 15 m on the ground: ~0.001 deg of elevation, a few ms of AOS/LOS.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# WGS-84 ellipsoid.
WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
# Rate of GMST (IAU 1982) in radians per SI second: 1.00273790935 turns per day.
EARTH_ROTATION_RAD_PER_S = 7.292115855306589e-05

_J2000_JD = 2451545.0
_SECONDS_PER_DAY = 86400.0
_DAYS_PER_CENTURY = 36525.0


def gmst_rad(jd_whole: FloatArray | float, jd_fraction: FloatArray | float) -> FloatArray:
    """GMST (IAU 1982, AIAA 2006-6753 Appendix C) in radians for UT1 Julian dates.

    The date is split into a whole and a fractional part, and the angle is accumulated as a
    fraction of a turn, so precision does not degrade with the size of the Julian date.
    """
    whole = np.asarray(jd_whole, dtype=np.float64)
    fraction = np.asarray(jd_fraction, dtype=np.float64)
    centuries = (whole - _J2000_JD + fraction) / _DAYS_PER_CENTURY
    # GMST in seconds of time at 0h UT1 plus the sidereal excess (the 1982 polynomial).
    seconds = 67310.54841 + (8640184.812866 + (0.093104 - 6.2e-6 * centuries) * centuries) * (
        centuries
    )
    turns = (whole % 1.0 + fraction + (seconds / _SECONDS_PER_DAY) % 1.0) % 1.0
    return np.asarray(turns * (2.0 * math.pi), dtype=np.float64)


def teme_to_ecef(
    position_km: FloatArray, velocity_km_s: FloatArray, theta_rad: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Rotate TEME states (..., 3) by GMST `theta_rad` (broadcast over the leading axes).

    Velocity gains the Earth-rotation term: v_fixed = R v_teme - omega x r_fixed.
    """
    cos = np.cos(theta_rad)
    sin = np.sin(theta_rad)
    x, y, z = position_km[..., 0], position_km[..., 1], position_km[..., 2]
    fixed_x = cos * x + sin * y
    fixed_y = cos * y - sin * x
    vx, vy, vz = velocity_km_s[..., 0], velocity_km_s[..., 1], velocity_km_s[..., 2]
    omega = EARTH_ROTATION_RAD_PER_S
    velocity_x = cos * vx + sin * vy + omega * fixed_y
    velocity_y = cos * vy - sin * vx - omega * fixed_x
    position = np.stack((fixed_x, fixed_y, z), axis=-1)
    velocity = np.stack((velocity_x, velocity_y, vz), axis=-1)
    return position, velocity


def geodetic_to_ecef(
    latitude_deg: FloatArray | float,
    longitude_deg: FloatArray | float,
    altitude_m: FloatArray | float,
) -> FloatArray:
    """Earth-fixed position (..., 3) in km of WGS-84 geodetic coordinates."""
    latitude = np.radians(np.asarray(latitude_deg, dtype=np.float64))
    longitude = np.radians(np.asarray(longitude_deg, dtype=np.float64))
    height_km = np.asarray(altitude_m, dtype=np.float64) / 1000.0
    sin_lat = np.sin(latitude)
    # Radius of curvature in the prime vertical.
    normal_km = WGS84_A_KM / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)
    horizontal = (normal_km + height_km) * np.cos(latitude)
    return np.stack(
        (
            horizontal * np.cos(longitude),
            horizontal * np.sin(longitude),
            (normal_km * (1.0 - WGS84_E2) + height_km) * sin_lat,
        ),
        axis=-1,
    )


def up_vector(latitude_deg: FloatArray | float, longitude_deg: FloatArray | float) -> FloatArray:
    """Unit ellipsoid normal (..., 3): the local vertical that elevation is measured from."""
    latitude = np.radians(np.asarray(latitude_deg, dtype=np.float64))
    longitude = np.radians(np.asarray(longitude_deg, dtype=np.float64))
    return np.stack(
        (
            np.cos(latitude) * np.cos(longitude),
            np.cos(latitude) * np.sin(longitude),
            np.sin(latitude),
        ),
        axis=-1,
    )
