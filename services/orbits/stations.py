"""Ground stations: where they are, how low they can see, how many satellites at once.

Owns: `GroundStation`, its validation limits, and reading station lists from CSV (the columns of
the bundled ground-stations.csv, `latitude_deg`/`longitude_deg` spellings too, optional `labels`,
`downlink_mbps`, `uplink_mbps`) and JSON (a list of objects with the same names), reporting each
bad line or record with the field at fault. Never raises on bad input.
Does not own: station positions in Earth-fixed coordinates (see `frames`) or visibility.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from orbitq.services.orbits.problems import ImportProblem, Unit
from orbitq.services.orbits.tabular import read_csv_records, read_json_objects

StationFormat = Literal["auto", "csv", "json"]

STATION_ID = re.compile(r"^[a-z0-9._-]{1,63}$")
NAME_CHARS_MAX = 128
# Lowest and highest plausible antenna sites (Dead Sea shore, high Andes observatories) with room.
ALTITUDE_M_MIN = -1_000.0
ALTITUDE_M_MAX = 10_000.0
ANTENNAS_MAX = 1_000
LINK_MBPS_MAX = 1_000_000.0
LABELS_MAX = 32
LABEL_CHARS_MAX = 63
STATION_FILE_RECORDS_MAX = 100_000
STATION_TEXT_CHARS_MAX = 16 * 1024 * 1024
# Rates assumed when a list does not give them: an X-band downlink and an S-band uplink of the
# class commercial LEO ground networks rent out. Modelling assumptions, like the antenna counts.
DOWNLINK_MBPS_DEFAULT = 200.0
UPLINK_MBPS_DEFAULT = 10.0

_COLUMNS_KNOWN = {
    "id",
    "name",
    "operator",
    "country",
    "latitude",
    "latitude_deg",
    "longitude",
    "longitude_deg",
    "altitude_m",
    "min_elevation_deg",
    "antennas",
    "labels",
    "downlink_mbps",
    "uplink_mbps",
}
_LABEL_KEY = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,62}$")


@dataclass(frozen=True, slots=True)
class GroundStation:
    """A ground station; `labels` carries at least `country` and `operator` when known.

    Positions are WGS-84 geodetic (degrees, metres above the ellipsoid). A satellite is in contact
    while its elevation is at least `min_elevation_deg`; `antennas` is how many satellites the
    station can talk to at once.
    """

    id: str
    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    min_elevation_deg: float
    antennas: int
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    downlink_mbps: float = DOWNLINK_MBPS_DEFAULT
    uplink_mbps: float = UPLINK_MBPS_DEFAULT

    def __post_init__(self) -> None:
        # Read-only so a shared station cannot be relabelled behind the scheduler's back.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        problems = station_problems(self)
        if problems:
            raise InvalidStationError(self.id, problems)


class InvalidStationError(ValueError):
    """A station built with invalid fields; `problems` names each field at fault."""

    def __init__(self, station_id: str, problems: list[str]) -> None:
        super().__init__(f"invalid ground station {station_id!r}: {'; '.join(problems)}")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ParsedStations:
    """The good stations and one problem per bad line or record."""

    stations: list[GroundStation]
    problems: list[ImportProblem]


class _FieldError(Exception):
    """A field-level problem; collected, never escapes this module."""


def station_problems(station: GroundStation) -> list[str]:
    """Messages naming each invalid field (empty when the station is valid)."""
    problems: list[str] = []
    if not STATION_ID.match(station.id):
        problems.append(f"field 'id' {station.id!r} must be 1-63 characters of a-z 0-9 . _ -")
    if not station.name.strip() or len(station.name) > NAME_CHARS_MAX:
        problems.append(f"field 'name' must be 1-{NAME_CHARS_MAX} characters")
    ranges = (
        ("latitude", station.latitude_deg, -90.0, 90.0, "degrees"),
        ("longitude", station.longitude_deg, -180.0, 180.0, "degrees"),
        ("altitude_m", station.altitude_m, ALTITUDE_M_MIN, ALTITUDE_M_MAX, "metres"),
        ("min_elevation_deg", station.min_elevation_deg, 0.0, 90.0, "degrees"),
        ("downlink_mbps", station.downlink_mbps, 0.0, LINK_MBPS_MAX, "Mbit/s"),
        ("uplink_mbps", station.uplink_mbps, 0.0, LINK_MBPS_MAX, "Mbit/s"),
    )
    for name, value, low, high, unit in ranges:
        # `not low <= value <= high` is also true for NaN, which is what we want.
        if not low <= value <= high:
            problems.append(f"field {name!r} is {value}, outside {low:g}..{high:g} {unit}")
    for name, value in (
        ("downlink_mbps", station.downlink_mbps),
        ("uplink_mbps", station.uplink_mbps),
    ):
        if value == 0.0:
            problems.append(f"field {name!r} must be more than 0 Mbit/s")
    if not 1 <= station.antennas <= ANTENNAS_MAX:
        problems.append(
            f"field 'antennas' is {station.antennas}; a station needs 1..{ANTENNAS_MAX} antennas"
        )
    problems.extend(label_problems(station.labels))
    country = station.labels.get("country")
    if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
        problems.append(f"field 'country' {country!r} must be an ISO 3166 two-letter code")
    return problems


def label_problems(labels: Mapping[str, str]) -> list[str]:
    """Messages for labels that break the rules every orbitq label follows (stations, nodes):
    at most LABELS_MAX, keys of a-z 0-9 . _ / - starting with a letter or digit, printable
    values of at most LABEL_CHARS_MAX characters."""
    if len(labels) > LABELS_MAX:
        return [f"field 'labels' has {len(labels)} labels, more than {LABELS_MAX}"]
    problems: list[str] = []
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            problems.append(f"label key {key!r} must be 1-63 characters of a-z 0-9 . _ / -")
        if len(value) > LABEL_CHARS_MAX or not value.isprintable():
            problems.append(
                f"label {key!r} value must be at most {LABEL_CHARS_MAX} printable chars"
            )
    return problems


def parse_stations(text: str, fmt: str = "auto") -> ParsedStations:
    """Ground stations from CSV or JSON text (`fmt` auto|csv|json; auto: JSON if it opens with '[').

    A station id seen twice keeps the first and reports the later one. An unknown `fmt` is a
    programming error and raises ValueError.
    """
    if fmt not in ("auto", "csv", "json"):
        raise ValueError(f"unknown station format {fmt!r}; expected auto, csv or json")
    if len(text) > STATION_TEXT_CHARS_MAX:
        message = f"input of {len(text)} characters exceeds {STATION_TEXT_CHARS_MAX}"
        return ParsedStations([], [ImportProblem(1, message)])
    text = text.removeprefix("\ufeff")
    if fmt == "json" or (fmt == "auto" and text.lstrip().startswith(("[", "{"))):
        return _parse_json(text)
    return _parse_csv(text)


class _Collector:
    def __init__(self, unit: Unit) -> None:
        self.unit: Unit = unit
        self.stations: list[GroundStation] = []
        self.problems: list[ImportProblem] = []
        self.first_at: dict[str, int] = {}

    def problem(self, number: int, message: str, unit: Unit | None = None) -> None:
        self.problems.append(ImportProblem(number, message, unit or self.unit))

    def add(self, record: Mapping[str, object], number: int) -> None:
        try:
            station = _station(record)
        except _FieldError as error:
            self.problem(number, str(error))
            return
        if station.id in self.first_at:
            first = f"{self.unit} {self.first_at[station.id]}"
            self.problem(number, f"station id {station.id!r} already appeared at {first}")
            return
        self.first_at[station.id] = number
        self.stations.append(station)

    def result(self) -> ParsedStations:
        return ParsedStations(self.stations, self.problems)


def _parse_csv(text: str) -> ParsedStations:
    collector = _Collector("line")

    def check_header(header: list[str]) -> str | None:
        unknown = [name for name in header if name not in _COLUMNS_KNOWN]
        return f"unknown column(s) {', '.join(unknown)}" if unknown else None

    def add(record: dict[str, str], line: int) -> bool:
        if len(collector.stations) >= STATION_FILE_RECORDS_MAX:
            collector.problem(line, f"more than {STATION_FILE_RECORDS_MAX} stations")
            return False
        collector.add({name: cell.strip() for name, cell in record.items()}, line)
        return True

    read_csv_records(
        text,
        normalise=str.lower,
        check_header=check_header,
        on_record=add,
        on_problem=collector.problem,
        no_header="no CSV header row (id,name,operator,country,latitude,...)",
    )
    return collector.result()


def _parse_json(text: str) -> ParsedStations:
    collector = _Collector("record")

    def add(record: dict[str, object], position: int) -> None:
        unknown = sorted(str(key) for key in record if key not in _COLUMNS_KNOWN)
        if unknown:
            collector.problem(position, f"unknown field(s) {', '.join(unknown)}")
        else:
            collector.add(record, position)

    read_json_objects(
        text,
        noun="stations",
        most=STATION_FILE_RECORDS_MAX,
        on_record=add,
        on_problem=collector.problem,
    )
    return collector.result()


def _station(record: Mapping[str, object]) -> GroundStation:
    labels = _labels(record.get("labels"))
    for key in ("operator", "country"):
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            labels[key] = value.strip()
        elif value is not None and not isinstance(value, str):
            raise _FieldError(f"field {key!r} must be a string")
    try:
        return GroundStation(
            id=_text(record, "id"),
            name=_text(record, "name"),
            latitude_deg=_number(record, "latitude", "latitude_deg"),
            longitude_deg=_number(record, "longitude", "longitude_deg"),
            altitude_m=_number(record, "altitude_m", default=0.0),
            min_elevation_deg=_number(record, "min_elevation_deg"),
            antennas=_whole(record, "antennas"),
            labels=labels,
            downlink_mbps=_number(record, "downlink_mbps", default=DOWNLINK_MBPS_DEFAULT),
            uplink_mbps=_number(record, "uplink_mbps", default=UPLINK_MBPS_DEFAULT),
        )
    except InvalidStationError as error:
        raise _FieldError("; ".join(error.problems)) from None


def _text(record: Mapping[str, object], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _FieldError(f"field {key!r} is missing or empty")
    return value.strip()


def _number(
    record: Mapping[str, object], key: str, alias: str | None = None, default: float | None = None
) -> float:
    if key in record and alias is not None and alias in record:
        raise _FieldError(f"fields {key!r} and {alias!r} both given; use one")
    name = alias if alias is not None and alias in record else key
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is not None:
            return default
        raise _FieldError(f"field {name!r} is missing or empty")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _FieldError(f"field {name!r} {value!r} is not a number")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise _FieldError(f"field {name!r} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise _FieldError(f"field {name!r} {value!r} is not a finite number")
    return number


def _whole(record: Mapping[str, object], key: str) -> int:
    value = record.get(key)
    if value is None or value == "":
        raise _FieldError(f"field {key!r} is missing or empty")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        sign = -1 if text.startswith("-") else 1
        digits = text.removeprefix("-")
        if digits.isascii() and digits.isdigit() and len(digits) <= 9:
            return sign * int(digits)
    raise _FieldError(f"field {key!r} {value!r} is not a whole number")


def _labels(value: object) -> dict[str, str]:
    """Labels as a JSON object, or in CSV as `key=value` pairs separated by ';'."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise _FieldError("field 'labels' must map strings to strings")
        return dict(value)
    if isinstance(value, str):
        labels: dict[str, str] = {}
        for pair in value.split(";"):
            if not pair.strip():
                continue
            key, equals, text = pair.partition("=")
            if not equals:
                raise _FieldError(f"field 'labels' part {pair.strip()!r} is not key=value")
            labels[key.strip()] = text.strip()
        return labels
    raise _FieldError("field 'labels' must be an object (JSON) or key=value;... (CSV)")
