"""CCSDS Orbit Mean-Elements Messages (OMM) as CelesTrak and Space-Track serve GP data: CSV, JSON.

Owns: reading OMM keyword/value records (CSV with a header row; JSON as a list of objects or
one object), converting them to `ElementSet` without going through TLE lines (so catalog numbers
of six digits and more work), and reporting each bad record with its line (CSV) or its 1-based
position in the list (JSON). Never raises on bad input. Keys other than those below (DECAYED,
SEMIMAJOR_AXIS, ...) are ignored: they are derived or archival. Also the reverse, `omm_record`:
an `ElementSet` as one OMM record that this module reads back to the same elements.
Does not own: TLE text (see `tle`) or format detection (see `importing`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from orbitq.services.orbits.elements import (
    ElementSet,
    ParsedElements,
    duplicate_problem,
    element_value_problems,
    sgp4_init_problem,
)
from orbitq.services.orbits.problems import ImportProblem, Unit
from orbitq.services.orbits.tabular import read_csv_records, read_json_objects

REQUIRED_KEYS = (
    "NORAD_CAT_ID",
    "EPOCH",
    "MEAN_MOTION",
    "ECCENTRICITY",
    "INCLINATION",
    "RA_OF_ASC_NODE",
    "ARG_OF_PERICENTER",
    "MEAN_ANOMALY",
    "BSTAR",
)
# Metadata that, when present, must say these elements are SGP4 mean elements in TEME/UTC:
# any other theory or frame would propagate to wrong positions without any error.
_EXPECTED_METADATA = {
    "MEAN_ELEMENT_THEORY": ("SGP4",),
    "REF_FRAME": ("TEME",),
    "TIME_SYSTEM": ("UTC",),
    "CENTER_NAME": ("EARTH",),
}
_OBJECT_ID = re.compile(r"^([0-9]{4})-([0-9]{3}[A-Z]{0,3})$")
# A JSON document of GP data is one list; refuse absurd sizes before building anything.
RECORDS_MAX = 1_000_000
_INTEGER_DIGITS_MAX = 12


class _RecordError(Exception):
    """A record-level problem; collected, never escapes this module."""


def parse_omm_json(text: str) -> ParsedElements:
    """OMM records from a JSON list of objects (or one object)."""
    collector = _Collector("record")
    read_json_objects(
        text,
        noun="OMM records",
        most=RECORDS_MAX,
        on_record=collector.add,
        on_problem=collector.problem,
        one_object_is_a_list=True,
    )
    return collector.result()


def parse_omm_csv(text: str) -> ParsedElements:
    """OMM records from CSV with a header row of OMM keywords (CelesTrak's FORMAT=csv)."""
    collector = _Collector("line")

    def check_header(header: list[str]) -> str | None:
        missing = [key for key in REQUIRED_KEYS if key not in header]
        return f"CSV header lacks the OMM column(s) {', '.join(missing)}" if missing else None

    def add(record: dict[str, str], line: int) -> bool:
        collector.add(record, line)
        return True

    read_csv_records(
        text,
        normalise=str.upper,
        check_header=check_header,
        on_record=add,
        on_problem=collector.problem,
        no_header="no CSV header row of OMM keywords",
    )
    return collector.result()


class _Collector:
    """Good element sets and problems of one document, and where each catalog number was first."""

    def __init__(self, unit: Unit) -> None:
        self.unit: Unit = unit
        self.elements: list[ElementSet] = []
        self.problems: list[ImportProblem] = []
        self.first_at: dict[int, int] = {}

    def problem(self, number: int, message: str, unit: Unit | None = None) -> None:
        self.problems.append(ImportProblem(number, message, unit or self.unit))

    def result(self) -> ParsedElements:
        return ParsedElements(self.elements, self.problems)

    def add(self, record: Mapping[str, object], number: int) -> None:
        try:
            element = _element_set(record)
        except _RecordError as error:
            self.problem(number, str(error))
            return
        found = element_value_problems(element)
        init = sgp4_init_problem(element.to_satrec()) if not found else None
        if init is not None:
            found.append(init)
        if found:
            self.problem(number, "; ".join(found))
        elif element.norad_id in self.first_at:
            first = f"{self.unit} {self.first_at[element.norad_id]}"
            self.problem(number, duplicate_problem(element.norad_id, first))
        else:
            self.first_at[element.norad_id] = number
            self.elements.append(element)


def _element_set(record: Mapping[str, object]) -> ElementSet:
    missing = [key for key in REQUIRED_KEYS if _blank(record.get(key))]
    if missing:
        raise _RecordError(f"missing OMM key(s) {', '.join(missing)}")
    for key, allowed in _EXPECTED_METADATA.items():
        value = record.get(key)
        if not _blank(value) and str(value).strip().upper() not in allowed:
            raise _RecordError(f"{key} is {value!r}; only {' / '.join(allowed)} is supported")
    norad_id = _integer(record, "NORAD_CAT_ID")
    name = record.get("OBJECT_NAME")
    object_id = str(record.get("OBJECT_ID") or "").strip()
    designator = _OBJECT_ID.match(object_id)
    return ElementSet(
        norad_id=norad_id,
        name=str(name).strip() if not _blank(name) else str(norad_id),
        epoch=_epoch(record["EPOCH"]),
        mean_motion_rev_per_day=_number(record, "MEAN_MOTION"),
        eccentricity=_number(record, "ECCENTRICITY"),
        inclination_deg=_number(record, "INCLINATION"),
        raan_deg=_number(record, "RA_OF_ASC_NODE"),
        arg_perigee_deg=_number(record, "ARG_OF_PERICENTER"),
        mean_anomaly_deg=_number(record, "MEAN_ANOMALY"),
        bstar=_number(record, "BSTAR"),
        mean_motion_dot=_number(record, "MEAN_MOTION_DOT", 0.0),
        mean_motion_ddot=_number(record, "MEAN_MOTION_DDOT", 0.0),
        classification=str(record.get("CLASSIFICATION_TYPE") or "U").strip()[:1] or "U",
        # TLE form of the international designator ("1998-067A" -> "98067A"), as sgp4 does.
        intl_designator=(
            designator.group(1)[2:] + designator.group(2) if designator else object_id[:8]
        ),
        element_set_no=_integer(record, "ELEMENT_SET_NO", 0),
        rev_at_epoch=_integer(record, "REV_AT_EPOCH", 0),
        ephemeris_type=_integer(record, "EPHEMERIS_TYPE", 0),
    )


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(record: Mapping[str, object], key: str, default: float | None = None) -> float:
    value = record.get(key)
    if _blank(value) and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _RecordError(f"{key} {value!r} is not a number")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise _RecordError(f"{key} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise _RecordError(f"{key} {value!r} is not a finite number")
    return number


def _integer(record: Mapping[str, object], key: str, default: int | None = None) -> int:
    value = record.get(key)
    if _blank(value) and default is not None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        # Bounded before int(): a thousand-digit string is not a catalog number.
        number = int(value.strip()) if len(value.strip()) <= _INTEGER_DIGITS_MAX else None
    if number is None or not 0 <= number < 10**_INTEGER_DIGITS_MAX:
        raise _RecordError(
            f"{key} {value!r} is not a whole number of at most {_INTEGER_DIGITS_MAX} digits"
        )
    return number


def _epoch(value: object) -> datetime:
    if not isinstance(value, str):
        raise _RecordError(f"EPOCH {value!r} is not an ISO 8601 date-time string")
    try:
        instant = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _RecordError(
            f"EPOCH {value!r} is not an ISO 8601 date-time (e.g. 2025-12-06T12:00:00.000000)"
        ) from None
    # OMM epochs are UTC (TIME_SYSTEM); CelesTrak writes them without a zone designator.
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


# Two-digit launch years in TLE designators: 57-99 are 1957-1999, 00-56 are 2000-2056.
_TLE_DESIGNATOR = re.compile(r"^([0-9]{2})([0-9]{3}[A-Z]{0,3})$")


def omm_record(element: ElementSet) -> dict[str, object]:
    """`element` as one CelesTrak-style OMM record (keywords as in their JSON GP data).

    Numbers are written as JSON numbers, so floats round-trip exactly; the epoch in ISO 8601
    with microseconds, UTC. `parse_omm_json` of the record gives back the same elements (the
    TLE lines aside).
    """
    designator = _TLE_DESIGNATOR.match(element.intl_designator)
    object_id = element.intl_designator
    if designator is not None:
        year = int(designator.group(1))
        object_id = f"{1900 + year if year >= 57 else 2000 + year}-{designator.group(2)}"
    return {
        "OBJECT_NAME": element.name,
        "OBJECT_ID": object_id,
        "EPOCH": element.epoch.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "MEAN_MOTION": element.mean_motion_rev_per_day,
        "ECCENTRICITY": element.eccentricity,
        "INCLINATION": element.inclination_deg,
        "RA_OF_ASC_NODE": element.raan_deg,
        "ARG_OF_PERICENTER": element.arg_perigee_deg,
        "MEAN_ANOMALY": element.mean_anomaly_deg,
        "EPHEMERIS_TYPE": element.ephemeris_type,
        "CLASSIFICATION_TYPE": element.classification,
        "NORAD_CAT_ID": element.norad_id,
        "ELEMENT_SET_NO": element.element_set_no,
        "REV_AT_EPOCH": element.rev_at_epoch,
        "BSTAR": element.bstar,
        "MEAN_MOTION_DOT": element.mean_motion_dot,
        "MEAN_MOTION_DDOT": element.mean_motion_ddot,
    }
