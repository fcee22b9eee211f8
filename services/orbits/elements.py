"""Element sets: the mean orbital elements of one satellite at one epoch, and how old they are.

Owns: `ElementSet` (the elements kept as numbers, so OMM records with catalog numbers beyond
the five TLE digits work), building an `sgp4.api.Satrec` from it, `ParsedElements` (what a parser
returns), the physical limits every format is validated against, and staleness helpers.
Does not own: reading any text format (see `tle` and `omm`) or propagation (see `contacts`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orbitq.services.orbits.problems import ImportProblem
from sgp4.api import SGP4_ERRORS, WGS72, Satrec

# SGP4 error grows by roughly 1-3 km a day away from epoch for LEO (drag is the main unknown).
# After 3 days that is 5-10 km along track, i.e. AOS/LOS off by about a second and growing
# quickly; CelesTrak refreshes LEO element sets several times a day, so an element set more than
# 3 days from the instant of use means the feed has stopped and an operator should look.
ELEMENT_AGE_WARN_DAYS = 3.0

# At 17.05 rev/day the semi-major axis equals Earth's equatorial radius, so anything faster orbits
# inside the Earth; the margin covers the Kozai/Brouwer mean-motion difference.
MEAN_MOTION_REV_PER_DAY_MAX = 17.5
# OMM allows nine-digit catalog numbers (the five TLE digits run out in 2026).
NORAD_ID_MAX = 999_999_999
# The largest catalog number SGP4's Satrec stores (Alpha-5 "Z9999"); the number only labels the
# record and never enters the propagation, so larger ones are initialised with 0.
SATREC_SATNUM_MAX = 339_999
NAME_CHARS_MAX = 128

# SGP4 counts element-set epochs in days from this instant (its `sgp4init` epoch argument).
_SGP4_EPOCH0 = datetime(1949, 12, 31, tzinfo=UTC)
_MINUTES_PER_DAY = 1440.0
# Radians per minute in one revolution per day; TLE/OMM mean motions are in revolutions per day.
_RAD_PER_MIN_PER_REV_PER_DAY = 2.0 * math.pi / _MINUTES_PER_DAY


@dataclass(frozen=True, slots=True)
class ElementSet:
    """Mean elements of one satellite (the SGP4 theory, TEME frame), as written in TLE/OMM.

    Angles are degrees; `mean_motion_rev_per_day` is the Kozai mean motion; the two derivative
    fields are the values as written (TLE columns 34-43 and 45-52, OMM MEAN_MOTION_DOT/DDOT, i.e.
    already divided by 2 and 6); `bstar` is in inverse Earth radii. `line1`/`line2` are the TLE
    lines when the set came from a TLE and None for OMM-only records.
    """

    norad_id: int
    name: str
    epoch: datetime
    mean_motion_rev_per_day: float
    eccentricity: float
    inclination_deg: float
    raan_deg: float
    arg_perigee_deg: float
    mean_anomaly_deg: float
    bstar: float
    mean_motion_dot: float = 0.0
    mean_motion_ddot: float = 0.0
    classification: str = "U"
    intl_designator: str = ""
    element_set_no: int = 0
    rev_at_epoch: int = 0
    ephemeris_type: int = 0
    line1: str | None = field(default=None, repr=False)
    line2: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Invariant: parsers validate first; a naive epoch here is a programming error.
        assert self.epoch.tzinfo is not None, "ElementSet.epoch must be aware UTC"

    def to_satrec(self) -> Satrec:
        """A ready `Satrec`: from the TLE lines when present, else from the elements.

        TLE lines go through `Satrec.twoline2rv`, exactly as every other SGP4 tool reads them
        (Skyfield included), so results agree to the bit. OMM records go through `sgp4init`
        with the same constants (WGS-72, improved mode).
        """
        if self.line1 is not None and self.line2 is not None:
            return Satrec.twoline2rv(self.line1, self.line2, WGS72)
        return satrec_from_elements(self)

    def age_days(self, at: datetime) -> float:
        """Days between the epoch and `at` (positive when `at` is later)."""
        return (at - self.epoch) / timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ParsedElements:
    """Everything a parser understood: the good element sets and one problem per bad input."""

    elements: list[ElementSet]
    problems: list[ImportProblem]


def satrec_from_elements(elements: ElementSet) -> Satrec:
    """A `Satrec` initialised with `sgp4init` from the numeric elements (any catalog number)."""
    satrec = Satrec()
    satnum = elements.norad_id if elements.norad_id <= SATREC_SATNUM_MAX else 0
    epoch_days = (elements.epoch - _SGP4_EPOCH0) / timedelta(days=1)
    # Units of sgp4init (Vallado): radians, radians/minute and its derivatives per minute.
    rate = _RAD_PER_MIN_PER_REV_PER_DAY
    satrec.sgp4init(
        WGS72,
        "i",
        satnum,
        epoch_days,
        elements.bstar,
        elements.mean_motion_dot * rate / _MINUTES_PER_DAY,
        elements.mean_motion_ddot * rate / _MINUTES_PER_DAY**2,
        elements.eccentricity,
        math.radians(elements.arg_perigee_deg),
        math.radians(elements.inclination_deg),
        math.radians(elements.mean_anomaly_deg),
        elements.mean_motion_rev_per_day * rate,
        math.radians(elements.raan_deg),
    )
    satrec.classification = elements.classification
    satrec.intldesg = elements.intl_designator
    satrec.elnum = elements.element_set_no
    satrec.revnum = elements.rev_at_epoch
    satrec.ephtype = elements.ephemeris_type
    return satrec


def element_value_problems(elements: ElementSet) -> list[str]:
    """Messages for physically impossible values (empty when the set is usable).

    Shared by every format so a TLE and an OMM record with the same numbers get the same verdict.
    """
    problems: list[str] = []
    if not 0 < elements.norad_id <= NORAD_ID_MAX:
        problems.append(f"catalog number {elements.norad_id} is outside 1..{NORAD_ID_MAX}")
    if not 0.0 <= elements.eccentricity < 1.0:
        problems.append(f"eccentricity {elements.eccentricity} is outside [0, 1)")
    if not 0.0 <= elements.inclination_deg <= 180.0:
        problems.append(f"inclination {elements.inclination_deg} deg is outside [0, 180]")
    motion = elements.mean_motion_rev_per_day
    if not 0.0 < motion <= MEAN_MOTION_REV_PER_DAY_MAX:
        problems.append(
            f"mean motion {motion} rev/day is outside (0, {MEAN_MOTION_REV_PER_DAY_MAX}] "
            "(faster would orbit inside the Earth)"
        )
    for label, value in (
        ("RAAN", elements.raan_deg),
        ("argument of perigee", elements.arg_perigee_deg),
        ("mean anomaly", elements.mean_anomaly_deg),
    ):
        if not 0.0 <= value <= 360.0:
            problems.append(f"{label} {value} deg is outside [0, 360]")
    for label, value in (
        ("B*", elements.bstar),
        ("mean motion derivative", elements.mean_motion_dot),
        ("mean motion second derivative", elements.mean_motion_ddot),
    ):
        if not math.isfinite(value):
            problems.append(f"{label} is not a finite number")
    if len(elements.name) > NAME_CHARS_MAX:
        problems.append(f"name is longer than {NAME_CHARS_MAX} characters")
    return problems


def sgp4_init_problem(satrec: Satrec) -> str | None:
    """SGP4's own verdict on initialisation (e.g. a decayed orbit), or None when it is fine."""
    code = int(satrec.error)
    if code == 0:
        return None
    reason = SGP4_ERRORS.get(code, "unknown error")
    return f"SGP4 cannot propagate these elements (error {code}: {reason})"


def duplicate_problem(norad_id: int, first_at: str) -> str:
    """The message for a catalog number already seen at `first_at` ("line 7", "record 2")."""
    return (
        f"catalog number {norad_id} already appeared at {first_at}; the first element set is "
        "kept (an import holds one element set per satellite)"
    )


def stale_elements(
    elements: Iterable[ElementSet], at: datetime, max_age_days: float = ELEMENT_AGE_WARN_DAYS
) -> list[ElementSet]:
    """Element sets whose epoch is more than `max_age_days` from `at`, in either direction.

    Propagating backwards far from epoch is as inaccurate as forwards, so both count.
    """
    if at.tzinfo is None:
        raise ValueError("stale_elements needs an aware UTC instant")
    return [element for element in elements if abs(element.age_days(at)) > max_age_days]
