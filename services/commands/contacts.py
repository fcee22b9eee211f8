"""`orbitq contacts compute`: contact windows from element-set and station files, offline.

Owns: the command's arguments, reading the two input files (or the bundled ones, named
`bundled:starlink`, `bundled:oneweb`, `bundled:stations` for element sets and
`bundled:ground-stations` for stations), turning every bad input into one precise
`CommandError`, and printing one row per contact (table, or `{"contacts": [...]}` with --json).
Does not own: parsing or the orbital computation (orbitq.services.orbits), which it imports
only when the command runs so `orbitq --help` stays fast. No server, no database.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from orbitq.clients.cli import progress
from orbitq.clients.cli.connect import rfc3339_rounded
from orbitq.clients.cli.output import print_json, print_table
from orbitq.clients.cli.registry import CommandError, CommandTree
from orbitq.services.commands import plots

if TYPE_CHECKING:
    from orbitq.services.orbits import ContactWindow, ElementSet, GroundStation, ImportProblem

BUNDLED_PREFIX = "bundled:"
COLUMNS = ("node", "station", "aos", "los", "max_elevation_deg")
# A CommandError lists at most this many problems; the count of the rest follows.
PROBLEMS_SHOWN_MAX = 20
INPUT_BYTES_MAX = 64 * 1024 * 1024
# bundled:<name> -> the bundled file's name.
ELEMENT_SOURCES = {"starlink": "starlink", "oneweb": "oneweb", "stations": "stations"}
STATION_SOURCES = {"ground-stations": "ground-stations", "stations": "ground-stations"}


def register(tree: CommandTree) -> None:
    tree.group("contacts", "contact windows between satellites and ground stations")
    parser = tree.add(
        "contacts compute",
        "compute contact windows offline from element-set and station files (no server)",
        _compute,
        json_output=True,
    )
    parser.add_argument(
        "--tle",
        required=True,
        metavar="FILE",
        help="element sets: TLE (2- or 3-line) or CelesTrak OMM (CSV or JSON), detected from "
        "the content; or bundled:starlink, bundled:oneweb, bundled:stations",
    )
    parser.add_argument(
        "--stations",
        required=True,
        metavar="FILE",
        help="ground stations, CSV or JSON; or bundled:ground-stations",
    )
    parser.add_argument(
        "--start", required=True, help="RFC 3339 instant with its zone, e.g. 2024-06-01T00:00:00Z"
    )
    parser.add_argument("--hours", default="24", help="length of the horizon (default 24)")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="compute with the good records when some are bad (the bad ones go to stderr)",
    )
    plots.register(tree)


def _compute(args: argparse.Namespace) -> int:
    from orbitq.services.orbits import HORIZON_HOURS_MAX, compute_contacts

    start = parse_instant(args.start, "--start")
    hours = parse_hours(args.hours, HORIZON_HOURS_MAX)
    elements = read_elements(args.tle, skip_bad=args.skip_bad)
    stations = read_stations(args.stations, skip_bad=args.skip_bad)
    _warn_if_stale(elements, start)
    try:
        with progress.bar(args, "searching", "satellites") as searched:
            end = start + timedelta(hours=hours)
            contacts = compute_contacts(elements, stations, start, end, searched)
    except ValueError as error:
        raise CommandError(str(error)) from None
    rows = [_row(contact) for contact in contacts]
    if args.json:
        print_json({"contacts": rows})
    else:
        print_table(rows, COLUMNS)
    return 0


def parse_instant(text: str, flag: str) -> datetime:
    """An aware UTC datetime from RFC 3339 text; the zone (Z or an offset) is required."""
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{flag} {text!r} is not an RFC 3339 time such as 2024-06-01T00:00:00Z"
        ) from None
    if instant.tzinfo is None:
        raise CommandError(f"{flag} {text!r} has no time zone; add Z for UTC")
    return instant.astimezone(UTC)


def parse_hours(text: str, most: float) -> float:
    try:
        hours = float(text)
    except ValueError:
        raise CommandError(f"--hours {text!r} is not a number of hours") from None
    if not hours > 0:
        raise CommandError(f"--hours must be more than 0, got {text}")
    if hours > most:
        raise CommandError(
            f"--hours {hours:g} exceeds the maximum horizon of {most:g} hours "
            "(HORIZON_HOURS_MAX); compute longer plans in several runs"
        )
    return hours


def read_source(source: str, flag: str, choices: dict[str, str]) -> tuple[str, str]:
    """The text of a file or bundled snapshot, and the name to show in messages."""
    if source.startswith(BUNDLED_PREFIX):
        from orbitq.services.orbits import bundled_path

        name = source.removeprefix(BUNDLED_PREFIX)
        if name not in choices:
            known = ", ".join(BUNDLED_PREFIX + choice for choice in sorted(set(choices)))
            raise CommandError(f"{flag} {source!r} is not bundled; choose one of {known}")
        return bundled_path(choices[name]).read_text(encoding="utf-8"), source
    path = Path(source)
    try:
        if path.stat().st_size > INPUT_BYTES_MAX:
            raise CommandError(f"{flag} {source}: larger than {INPUT_BYTES_MAX} bytes")
        return path.read_text(encoding="utf-8"), source
    except OSError as error:
        raise CommandError(f"cannot read {flag} {source}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise CommandError(f"{flag} {source} is not UTF-8 text (byte {error.start})") from None


def read_elements(source: str, *, skip_bad: bool) -> list[ElementSet]:
    from orbitq.services.orbits import parse_elements

    text, shown = read_source(source, "--tle", ELEMENT_SOURCES)
    parsed = parse_elements(text)
    _report(shown, parsed.problems, len(parsed.elements), skip_bad=skip_bad)
    if not parsed.elements:
        raise CommandError(f"--tle {shown} holds no element sets")
    return parsed.elements


def read_stations(source: str, *, skip_bad: bool) -> list[GroundStation]:
    return _parsed_stations(source, skip_bad=skip_bad)[1]


def read_stations_text(source: str) -> str:
    """The text of a station file (or bundled:ground-stations) whose every record is good."""
    return _parsed_stations(source, skip_bad=False)[0]


def _parsed_stations(source: str, *, skip_bad: bool) -> tuple[str, list[GroundStation]]:
    from orbitq.services.orbits import parse_stations

    text, shown = read_source(source, "--stations", STATION_SOURCES)
    parsed = parse_stations(text)
    _report(shown, parsed.problems, len(parsed.stations), skip_bad=skip_bad)
    if not parsed.stations:
        raise CommandError(f"--stations {shown} holds no ground stations")
    return text, parsed.stations


def _report(shown: str, problems: list[ImportProblem], good: int, *, skip_bad: bool) -> None:
    """Bad records stop the command unless --skip-bad; then they are listed on stderr."""
    if not problems:
        return
    lines = [f"  {problem}" for problem in problems[:PROBLEMS_SHOWN_MAX]]
    if len(problems) > PROBLEMS_SHOWN_MAX:
        lines.append(f"  ... and {len(problems) - PROBLEMS_SHOWN_MAX} more")
    if not skip_bad:
        head = (
            f"{shown}: {len(problems)} problem(s); fix them, or pass --skip-bad to use the "
            f"{good} good record(s):"
        )
        raise CommandError("\n".join([head, *lines]))
    print(f"orbitq: warning: {shown}: skipped {len(problems)} bad input(s):", file=sys.stderr)
    print("\n".join(lines), file=sys.stderr)


def _warn_if_stale(elements: list[ElementSet], start: datetime) -> None:
    from orbitq.services.orbits import ELEMENT_AGE_WARN_DAYS, stale_elements

    stale = stale_elements(elements, start)
    if stale:
        worst = max(stale, key=lambda element: abs(element.age_days(start)))
        print(
            f"orbitq: warning: {len(stale)} element set(s) have epochs more than "
            f"{ELEMENT_AGE_WARN_DAYS:g} days from --start (worst: {worst.name}, "
            f"{worst.age_days(start):+.1f} days); SGP4 error grows by km per day, "
            "so start near the epoch",
            file=sys.stderr,
        )


def _row(contact: ContactWindow) -> dict[str, object]:
    return {
        "node": contact.node,
        "station": contact.station,
        "aos": rfc3339_rounded(contact.aos),
        "los": rfc3339_rounded(contact.los),
        "max_elevation_deg": round(contact.max_elevation_deg, 2),
    }
