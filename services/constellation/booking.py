"""Parsing a contact plan booked from a ground network: JSON or CSV text to `BookedWindow`s.

Owns: the two accepted formats (docs/operator.md, "Booked contact plans", has them with
examples) and the checks that need nothing but the text: the fields, times as RFC 3339 with a
zone, end after start, a window at most BOOKED_WINDOW_HOURS_MAX long, rates and antenna in
range, at most BOOKED_WINDOWS_PER_IMPORT_MAX windows, one mode per station. Every problem is
reported with its line (CSV) or record (JSON) number, all of them at once.
Does not own: checks against the stored world (unknown nodes or stations, antennas, overlaps,
times against the clock, visibility: orbitq.services.constellation.booked).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from orbitq.services.clock import from_ns, to_ns
from orbitq.services.constellation.model import LINK_MBPS_MAX, problems_message
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.orbits import ImportProblem

BookingMode = Literal["replace", "restrict"]
# "computed" in a plan's station modes: drop the station's booked plan, back to computed windows.
StationMode = Literal["replace", "restrict", "computed"]
STATION_MODES: tuple[StationMode, ...] = ("replace", "restrict", "computed")
PLAN_FORMATS = ("auto", "json", "csv")

BOOKED_PLAN_TEXT_BYTES_MAX = 4 * 1024 * 1024
BOOKED_WINDOWS_PER_IMPORT_MAX = 10_000
# A pass lasts minutes; a booking of more than a day is a typo in a date.
BOOKED_WINDOW_HOURS_MAX = 24.0
ANTENNA_MAX = 64
CSV_COLUMNS_REQUIRED = ("node", "station", "start", "end")
CSV_COLUMNS = (*CSV_COLUMNS_REQUIRED, "uplink_mbps", "downlink_mbps", "antenna", "mode")
_FIELD_CHARS_MAX = 200


@dataclass(frozen=True, slots=True)
class BookedWindow:
    """`node` may talk to `station` during [start_ns, end_ns). Rates 0 and antenna 0: not given."""

    where: ImportProblem  # the line or record it came from (message unused)
    node: str
    station: str
    start_ns: int
    end_ns: int
    uplink_mbps: float = 0.0
    downlink_mbps: float = 0.0
    antenna: int = 0

    def label(self) -> str:
        """How a message names this window: its line, node, station and times."""
        return (
            f"{self.where.unit} {self.where.line} (node {self.node} at {self.station},"
            f" {_iso(self.start_ns)} to {_iso(self.end_ns)})"
        )


@dataclass(frozen=True, slots=True)
class ParsedPlan:
    windows: tuple[BookedWindow, ...]
    # Modes the text gave, by station.
    modes: Mapping[str, StationMode]


def _iso(ns: int) -> str:
    return from_ns(ns).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_plan(text: str, fmt: str = "auto") -> ParsedPlan:
    """The windows and station modes of `text`; InvalidArgumentError naming every problem."""
    fmt = _format(text, fmt)
    problems: list[ImportProblem] = []
    records = _json_records(text) if fmt == "json" else _csv_records(text)
    windows: list[BookedWindow] = []
    modes: dict[str, StationMode] = {}
    mode_lines: dict[str, ImportProblem] = {}
    for where, record in records:
        if where.message:
            problems.append(where)
            continue
        if len(windows) >= BOOKED_WINDOWS_PER_IMPORT_MAX:
            raise InvalidArgumentError(
                f"the contact plan has more than {BOOKED_WINDOWS_PER_IMPORT_MAX:,} windows;"
                " split it by station"
            )
        window, mode, errors = _window(where, record)
        problems.extend(ImportProblem(where.line, e, where.unit) for e in errors)
        if window is None:
            continue
        windows.append(window)
        if mode is not None:
            _set_mode(modes, mode_lines, window.station, mode, where, problems)
    if fmt == "json":
        for station, mode, where in _json_modes(text):
            if where.message:
                problems.append(where)
            elif mode is not None:
                _set_mode(modes, mode_lines, station, mode, where, problems)
    if problems:
        problems.sort(key=lambda problem: problem.line)
        raise InvalidArgumentError(
            problems_message(
                f"the contact plan has {len(problems)} problem(s); nothing was imported:",
                list(problems),
            )
        )
    if not windows and not modes:
        raise InvalidArgumentError("the contact plan has no windows and no station modes")
    return ParsedPlan(tuple(windows), modes)


def _format(text: str, fmt: str) -> str:
    """The format of `text` (checking its size): json or csv."""
    if fmt not in PLAN_FORMATS:
        raise InvalidArgumentError(f"format {fmt!r}: use one of {', '.join(PLAN_FORMATS)}")
    if len(text.encode("utf-8")) > BOOKED_PLAN_TEXT_BYTES_MAX:
        raise InvalidArgumentError(
            f"the contact plan is larger than {BOOKED_PLAN_TEXT_BYTES_MAX:,} bytes; split it"
        )
    if not text.strip():
        raise InvalidArgumentError("the contact plan is empty")
    if fmt == "auto":
        return "json" if text.lstrip()[:1] in ("{", "[") else "csv"
    return fmt


def _set_mode(
    modes: dict[str, StationMode],
    lines: dict[str, ImportProblem],
    station: str,
    mode: StationMode,
    where: ImportProblem,
    problems: list[ImportProblem],
) -> None:
    known = modes.get(station)
    if known is None:
        modes[station], lines[station] = mode, where
    elif known != mode:
        first = lines[station]
        problems.append(
            ImportProblem(
                where.line,
                f"station {station} is given mode {mode} here but {known} at {first.unit}"
                f" {first.line}: one mode per station",
                where.unit,
            )
        )


# -- the two formats ---------------------------------------------------------------------------


def _csv_records(text: str) -> Iterator[tuple[ImportProblem, Mapping[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [column.strip().lower() for column in next(reader)]
    except (StopIteration, csv.Error) as error:
        yield ImportProblem(1, f"cannot read the CSV header: {error}", "line"), {}
        return
    missing = [column for column in CSV_COLUMNS_REQUIRED if column not in header]
    unknown = [column for column in header if column not in CSV_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        yield (
            ImportProblem(
                1,
                f"the CSV header must name the columns {', '.join(CSV_COLUMNS_REQUIRED)}"
                f" (optional: {', '.join(CSV_COLUMNS[4:])}), each once"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown[:5])}" if unknown else ""),
                "line",
            ),
            {},
        )
        return
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                yield (
                    ImportProblem(
                        line, f"{len(cells)} cells where the header has {len(header)}", "line"
                    ),
                    {},
                )
                continue
            values = {
                column: cell.strip() for column, cell in zip(header, cells, strict=True) if cell
            }
            yield ImportProblem(line, "", "line"), values
    except csv.Error as error:
        yield ImportProblem(reader.line_num, f"bad CSV: {error}", "line"), {}


def _json_document(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgumentError(
            f"the contact plan is not valid JSON: {error.msg} at line {error.lineno}"
            f" column {error.colno}"
        ) from None


def _json_records(text: str) -> Iterator[tuple[ImportProblem, Mapping[str, Any]]]:
    document = _json_document(text)
    if isinstance(document, dict):
        extra = set(document) - {"windows", "stations"}
        if extra:
            raise InvalidArgumentError(
                f"unknown top-level key(s) {', '.join(sorted(extra))}: a JSON contact plan is"
                ' {"stations": {...}, "windows": [...]} or a list of windows'
            )
        document = document.get("windows", [])
    if not isinstance(document, list):
        raise InvalidArgumentError('"windows" must be a list of window objects')
    for number, record in enumerate(document, start=1):
        if not isinstance(record, dict):
            yield ImportProblem(number, "a window must be a JSON object", "record"), {}
            continue
        unknown = [key for key in record if key not in CSV_COLUMNS]
        if unknown:
            yield (
                ImportProblem(
                    number,
                    f"unknown field(s) {', '.join(map(str, unknown[:5]))}; a window has"
                    f" {', '.join(CSV_COLUMNS)}",
                    "record",
                ),
                {},
            )
            continue
        yield ImportProblem(number, "", "record"), record


def _json_modes(text: str) -> Iterator[tuple[str, StationMode | None, ImportProblem]]:
    document = _json_document(text)
    if not isinstance(document, dict) or "stations" not in document:
        return
    stations = document["stations"]
    if not isinstance(stations, dict):
        yield "", None, ImportProblem(0, '"stations" must map station ids to modes', "record")
        return
    for station, mode in stations.items():
        if mode not in STATION_MODES:
            yield (
                station,
                None,
                ImportProblem(
                    0,
                    f'"stations": station {str(station)[:63]} has mode {str(mode)[:20]!r}; use'
                    f" one of {', '.join(STATION_MODES)}",
                    "record",
                ),
            )
        else:
            yield str(station), mode, ImportProblem(0, "", "record")


# -- one window --------------------------------------------------------------------------------


def _window(
    where: ImportProblem, record: Mapping[str, Any]
) -> tuple[BookedWindow | None, StationMode | None, list[str]]:
    errors: list[str] = []
    node = _identifier(record, "node", errors)
    station = _identifier(record, "station", errors)
    start = _instant(record, "start", errors)
    end = _instant(record, "end", errors)
    uplink = _rate(record, "uplink_mbps", errors)
    downlink = _rate(record, "downlink_mbps", errors)
    antenna = _antenna(record, errors)
    mode: StationMode | None = None
    raw_mode = record.get("mode")
    if raw_mode not in (None, ""):
        if raw_mode in STATION_MODES:
            mode = raw_mode
        else:
            errors.append(f"mode {str(raw_mode)[:20]!r}: use one of {', '.join(STATION_MODES)}")
    if start is not None and end is not None:
        if end <= start:
            errors.append("end must be after start")
        elif end - start > BOOKED_WINDOW_HOURS_MAX * 3600 * 1_000_000_000:
            errors.append(f"a window is at most {BOOKED_WINDOW_HOURS_MAX:g} hours long")
    if errors or node is None or station is None or start is None or end is None:
        return None, None, errors
    window = BookedWindow(where, node, station, start, end, uplink, downlink, antenna)
    return window, mode, []


def _identifier(record: Mapping[str, Any], name: str, errors: list[str]) -> str | None:
    value = record.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and name == "node":
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{name} is missing (give the {name}'s id)")
        return None
    if len(value) > 63:
        errors.append(f"{name} {value[:20]!r}... is longer than 63 characters")
        return None
    return value.strip()


def _instant(record: Mapping[str, Any], name: str, errors: list[str]) -> int | None:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{name} is missing (an RFC 3339 time such as 2026-01-01T12:00:00Z)")
        return None
    text = value.strip()
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        errors.append(
            f"{name} {text[:_FIELD_CHARS_MAX]!r} is not an RFC 3339 time"
            " (e.g. 2026-01-01T12:00:00Z)"
        )
        return None
    if instant.tzinfo is None:
        errors.append(f"{name} {text[:40]!r} has no time zone: add Z or an offset")
        return None
    if not 1970 <= instant.year <= 2200:
        errors.append(f"{name} {text[:40]!r} is out of range (years 1970-2200)")
        return None
    return to_ns(instant)


def _rate(record: Mapping[str, Any], name: str, errors: list[str]) -> float:
    value = record.get(name)
    if value in (None, ""):
        return 0.0
    try:
        rate = float(value)
    except (TypeError, ValueError):
        errors.append(f"{name} {str(value)[:20]!r} is not a number")
        return 0.0
    if not math.isfinite(rate) or not 0 < rate <= LINK_MBPS_MAX:
        errors.append(f"{name} {rate:g} is outside (0, {LINK_MBPS_MAX:,}] Mbit/s")
        return 0.0
    return rate


def _antenna(record: Mapping[str, Any], errors: list[str]) -> int:
    value = record.get("antenna")
    if value in (None, ""):
        return 0
    try:
        antenna = int(str(value))
    except ValueError:
        errors.append(f"antenna {str(value)[:20]!r} is not a whole number")
        return 0
    if not 1 <= antenna <= ANTENNA_MAX:
        errors.append(f"antenna {antenna} is outside 1..{ANTENNA_MAX}")
        return 0
    return antenna
