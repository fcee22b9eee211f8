"""Two-line element sets (TLE) as CelesTrak and Space-Track publish them, in 2- and 3-line form.

Owns: splitting text into records (an optional name line, then line 1 and line 2), the fixed
column layout, checksums, line numbers, matching catalog numbers and the per-field checks,
reporting each problem with its 1-based line number. Never raises on bad input.
Does not own: OMM (see `omm`), format detection (see `importing`), or what a caller does with
the problems.

Layout reference: the NORAD two-line format as documented by CelesTrak ("FAQs: Two-Line Element
Set Format"); columns below are 0-based Python slices of the 69-character lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orbitq.services.orbits.elements import (
    MEAN_MOTION_REV_PER_DAY_MAX,
    NAME_CHARS_MAX,
    ElementSet,
    ParsedElements,
    duplicate_problem,
    element_value_problems,
    sgp4_init_problem,
)
from orbitq.services.orbits.problems import ImportProblem

TLE_LINE_CHARS = 69
# Columns that must hold a space; a digit there means the line was shifted or truncated.
_LINE1_SPACES = (1, 8, 17, 32, 43, 52, 61, 63)
_LINE2_SPACES = (1, 7, 16, 25, 33, 42, 51)
# Alpha-5 catalog numbers (100000-339999): a letter for the leading two digits, skipping I and O
# so they are never mistaken for 1 and 0.
_ALPHA5_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_CATALOG = re.compile(r"^(?:[0-9 ]{4}[0-9]|[A-HJ-NP-Z][0-9]{4})$")
# An exponent field with an assumed leading decimal point: " 41805-3" is 0.41805e-3.
_ASSUMED_DECIMAL = re.compile(r"^([+-]?)\.?([0-9]{1,5})([+-])([0-9])$")
# TLE epochs carry two-digit years: 57-99 are 1957-1999, 00-56 are 2000-2056 (Sputnik rule).
_CENTURY_PIVOT_YY = 57


@dataclass(slots=True)
class _Fields:
    """Values read from the two lines of one record, before they become an ElementSet."""

    norad_id: int = 0
    classification: str = "U"
    intl_designator: str = ""
    epoch: datetime | None = None
    mean_motion_dot: float = 0.0
    mean_motion_ddot: float = 0.0
    bstar: float = 0.0
    ephemeris_type: int = 0
    element_set_no: int = 0
    inclination_deg: float = 0.0
    raan_deg: float = 0.0
    eccentricity: float = 0.0
    arg_perigee_deg: float = 0.0
    mean_anomaly_deg: float = 0.0
    mean_motion_rev_per_day: float = 0.0
    rev_at_epoch: int = 0


# Reads the fields of one line into `_Fields`, returning problem messages.
_Reader = Callable[[str, _Fields], list[str]]


def tle_checksum(line: str) -> int:
    """The modulo-10 checksum of the first 68 characters: digits count, '-' counts 1."""
    total = 0
    for char in line[:68]:
        if char.isdigit():
            total += int(char)
        elif char == "-":
            total += 1
    return total % 10


def decode_catalog(text: str) -> int | None:
    """A catalog number from its five columns (digits or Alpha-5), or None when malformed."""
    if not _CATALOG.match(text):
        return None
    if text[0].isalpha():
        return (_ALPHA5_LETTERS.index(text[0]) + 10) * 10_000 + int(text[1:])
    return int(text.replace(" ", "0"))


def parse_tle(text: str) -> ParsedElements:
    """Every element set in `text` (2-line or 3-line form, mixed), and one problem per bad line.

    Blank lines are ignored; a name line is the line before line 1 (a leading "0 " as in
    Space-Track's 3LE is dropped); without one the name is the catalog number.
    """
    lines = text.splitlines()
    elements: list[ElementSet] = []
    problems: list[ImportProblem] = []
    name: tuple[int, str] | None = None
    first_line_of: dict[int, int] = {}
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        number = index + 1
        if not line.strip():
            index += 1
            continue
        if line.startswith("1 "):
            following = lines[index + 1].rstrip() if index + 1 < len(lines) else ""
            if following.startswith("2 "):
                record, found = _parse_record(name, (number, line), (number + 1, following))
                problems.extend(found)
                if record is not None and record.norad_id in first_line_of:
                    first = f"line {first_line_of[record.norad_id]}"
                    problems.append(
                        ImportProblem(number, duplicate_problem(record.norad_id, first))
                    )
                elif record is not None:
                    first_line_of[record.norad_id] = number
                    elements.append(record)
                index += 2
            else:
                problems.append(ImportProblem(number, "TLE line 1 is not followed by its line 2"))
                index += 1
            name = None
            continue
        if line.startswith("2 "):
            problems.append(ImportProblem(number, "TLE line 2 without a line 1 before it"))
        else:
            if name is not None:
                problems.append(_orphan_name(name))
            name = (number, _name_of(line))
        index += 1
    if name is not None:
        problems.append(_orphan_name(name))
    # An orphan name is only known when the next line arrives: report in line order.
    problems.sort(key=lambda problem: problem.line)
    return ParsedElements(elements, problems)


def _name_of(line: str) -> str:
    stripped = line.strip()
    return stripped[2:].strip() if stripped.startswith("0 ") else stripped


def _orphan_name(name: tuple[int, str]) -> ImportProblem:
    shown = name[1] if len(name[1]) <= 40 else name[1][:40] + "..."
    return ImportProblem(
        name[0], f"{shown!r} is neither a TLE line nor a name followed by TLE lines 1 and 2"
    )


def _parse_record(
    name: tuple[int, str] | None, line1: tuple[int, str], line2: tuple[int, str]
) -> tuple[ElementSet | None, list[ImportProblem]]:
    fields = _Fields()
    problems = [ImportProblem(line1[0], m) for m in _read_line(line1[1], 1, fields, _read_line1)]
    catalog1 = fields.norad_id
    problems += [ImportProblem(line2[0], m) for m in _read_line(line2[1], 2, fields, _read_line2)]
    if not problems and fields.norad_id != catalog1:
        problems.append(
            ImportProblem(
                line2[0],
                f"catalog number {fields.norad_id} does not match {catalog1} on line {line1[0]}",
            )
        )
    if name is not None and len(name[1]) > NAME_CHARS_MAX:
        problems.append(ImportProblem(name[0], f"name is longer than {NAME_CHARS_MAX} characters"))
    if problems:
        return None, problems
    assert fields.epoch is not None
    record = ElementSet(
        norad_id=fields.norad_id,
        name=name[1] if name is not None else str(fields.norad_id),
        epoch=fields.epoch,
        mean_motion_rev_per_day=fields.mean_motion_rev_per_day,
        eccentricity=fields.eccentricity,
        inclination_deg=fields.inclination_deg,
        raan_deg=fields.raan_deg,
        arg_perigee_deg=fields.arg_perigee_deg,
        mean_anomaly_deg=fields.mean_anomaly_deg,
        bstar=fields.bstar,
        mean_motion_dot=fields.mean_motion_dot,
        mean_motion_ddot=fields.mean_motion_ddot,
        classification=fields.classification,
        intl_designator=fields.intl_designator,
        element_set_no=fields.element_set_no,
        rev_at_epoch=fields.rev_at_epoch,
        ephemeris_type=fields.ephemeris_type,
        line1=line1[1],
        line2=line2[1],
    )
    # The field readers already enforce these; this pairs the check with the built value.
    late = element_value_problems(record)
    init = sgp4_init_problem(record.to_satrec())
    if init is not None:
        late.append(init)
    if late:
        where = f"the element set on lines {line1[0]}-{line2[0]}"
        return None, [ImportProblem(line1[0], f"{where}: {message}") for message in late]
    return record, []


def _read_line(line: str, which: int, fields: _Fields, reader: _Reader) -> list[str]:
    """Layout checks shared by both lines, then the line's own fields (only when aligned)."""
    if not line.isascii() or not line.isprintable():
        return [f"TLE line {which} holds characters other than printable ASCII"]
    if len(line) != TLE_LINE_CHARS:
        return [
            f"TLE line {which} has {len(line)} characters, expected {TLE_LINE_CHARS} "
            "(truncated, wrapped or padded)"
        ]
    problems: list[str] = []
    expected = tle_checksum(line)
    if not line[68].isdigit():
        problems.append(f"checksum column 69 holds {line[68]!r}, expected the digit {expected}")
    elif int(line[68]) != expected:
        problems.append(
            f"checksum digit is {line[68]} but the line's digits give {expected}: "
            "the line is corrupted or was edited"
        )
    spaces = _LINE1_SPACES if which == 1 else _LINE2_SPACES
    shifted = [column + 1 for column in spaces if line[column] != " "]
    if shifted:
        problems.append(f"columns {shifted} of TLE line {which} must be spaces (shifted fields?)")
        return problems
    problems.extend(reader(line, fields))
    return problems


def _read_catalog(line: str, fields: _Fields, problems: list[str]) -> None:
    """Columns 3-7 of either line: the catalog number (5 digits or Alpha-5)."""
    catalog = decode_catalog(line[2:7])
    if catalog is None:
        problems.append(f"catalog number {line[2:7]!r} (columns 3-7) is not 5 digits or Alpha-5")
    else:
        fields.norad_id = catalog


def _read_line1(line: str, fields: _Fields) -> list[str]:
    problems: list[str] = []
    _read_catalog(line, fields, problems)
    if line[7] not in "UCS ":
        problems.append(f"classification {line[7]!r} (column 8) is not U, C or S")
    fields.classification = line[7].strip() or "U"
    fields.intl_designator = line[9:17].strip()
    epoch = _epoch(line[18:20], line[20:32])
    if isinstance(epoch, str):
        problems.append(epoch)
    else:
        fields.epoch = epoch
    for label, text, columns in (
        ("mean motion derivative", line[33:43], "34-43"),
        ("mean motion second derivative", line[44:52], "45-52"),
        ("B*", line[53:61], "54-61"),
    ):
        value = _decimal(text) if label == "mean motion derivative" else _assumed_decimal(text)
        if value is None:
            problems.append(f"{label} {text.strip()!r} (columns {columns}) is not a number")
        elif label == "B*":
            fields.bstar = value
        elif label == "mean motion derivative":
            fields.mean_motion_dot = value
        else:
            fields.mean_motion_ddot = value
    fields.ephemeris_type = _small_int(line[62], problems, "ephemeris type (column 63)")
    fields.element_set_no = _small_int(line[64:68], problems, "element set number (columns 65-68)")
    return problems


def _read_line2(line: str, fields: _Fields) -> list[str]:
    problems: list[str] = []
    _read_catalog(line, fields, problems)
    angles = (
        ("inclination", line[8:16], "9-16", 180.0),
        ("RAAN", line[17:25], "18-25", 360.0),
        ("argument of perigee", line[34:42], "35-42", 360.0),
        ("mean anomaly", line[43:51], "44-51", 360.0),
    )
    values: list[float] = []
    for label, text, columns, most in angles:
        value = _decimal(text)
        if value is None:
            problems.append(f"{label} {text.strip()!r} (columns {columns}) is not a number")
        elif not 0.0 <= value <= most:
            problems.append(f"{label} {value} deg (columns {columns}) is outside [0, {most:g}]")
        values.append(value if value is not None else 0.0)
    fields.inclination_deg, fields.raan_deg, fields.arg_perigee_deg, fields.mean_anomaly_deg = (
        values
    )
    eccentricity = line[26:33]
    if eccentricity.isdigit():
        fields.eccentricity = int(eccentricity) / 10**7
    else:
        problems.append(
            f"eccentricity {eccentricity!r} (columns 27-33) is not 7 digits "
            "(an assumed leading '0.'; eccentricity must be in [0, 1))"
        )
    motion = _decimal(line[52:63])
    if motion is None:
        problems.append(f"mean motion {line[52:63].strip()!r} (columns 53-63) is not a number")
    elif not 0.0 < motion <= MEAN_MOTION_REV_PER_DAY_MAX:
        problems.append(
            f"mean motion {motion} rev/day (columns 53-63) is outside "
            f"(0, {MEAN_MOTION_REV_PER_DAY_MAX}] (faster would orbit inside the Earth)"
        )
    else:
        fields.mean_motion_rev_per_day = motion
    fields.rev_at_epoch = _small_int(line[63:68], problems, "revolution number (columns 64-68)")
    return problems


def _epoch(year_text: str, day_text: str) -> datetime | str:
    day = _decimal(day_text)
    if not year_text.isdigit() or day is None:
        return f"epoch {year_text}{day_text.strip()!r} (columns 19-32) is not YYDDD.DDDDDDDD"
    yy = int(year_text)
    year = 1900 + yy if yy >= _CENTURY_PIVOT_YY else 2000 + yy
    days_in_year = 366 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 365
    if not 1.0 <= day < days_in_year + 1:
        return f"epoch day {day} (columns 21-32) is outside 1..{days_in_year} of {year}"
    return datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=day - 1.0)


def _decimal(text: str) -> float | None:
    stripped = text.strip()
    if not stripped or not re.fullmatch(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)", stripped):
        return None
    value = float(stripped)
    return value if math.isfinite(value) else None


def _assumed_decimal(text: str) -> float | None:
    match = _ASSUMED_DECIMAL.match(text.strip())
    if match is None:
        return None
    sign, mantissa, exponent_sign, exponent = match.groups()
    value = int(mantissa) * 10.0 ** (int(exponent_sign + exponent) - len(mantissa))
    return -value if sign == "-" else value


def _small_int(text: str, problems: list[str], label: str) -> int:
    stripped = text.strip()
    if not stripped:
        return 0
    if not stripped.isdigit():
        problems.append(f"{label} {stripped!r} is not a number")
        return 0
    return int(stripped)
