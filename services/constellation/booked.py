"""Booked contact plans: importing them, and the contacts the scheduler uses once they exist.

Owns:
- `import_plan`: a parsed plan (booking.py) checked against the stored world (unknown nodes or
  stations: NOT_FOUND; windows already over or more than HORIZON_HOURS_MAX ahead, an antenna the
  station does not have, two windows of one satellite at one station overlapping, more windows
  at once at a station than it has antennas, two on one antenna overlapping: INVALID_ARGUMENT,
  all named at once) and against computed geometry (a warning per window where the satellite is
  not visible for all of it). Stored in one write transaction that replaces the named stations'
  booked windows that are not over, sets their modes, and bumps the plan's version (so the
  scheduler's world sync sees the change).
- `effective`: the contacts a station contributes: computed ones (no booked plan), its booked
  windows (mode replace), or booked time intersected with computed windows (mode restrict),
  merged in (aos, id) order with the rest of the plan, in bounded batches.
Does not own: parsing (booking.py), computed contacts (plan.py), orbital computation.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import SQLModel

from orbitq.services.clock import NANOS_PER_SECOND, from_ns, to_ns
from orbitq.services.constellation import tables as t
from orbitq.services.constellation.booking import BookedWindow, BookingMode, ParsedPlan
from orbitq.services.constellation.model import (
    PROBLEMS_REPORTED_MAX,
    StoredContact,
    problems_message,
)
from orbitq.services.constellation.plan import (
    CONTACT_RETENTION_DAYS_DEFAULT,
    READ_BATCH_ROWS,
    ContactQuery,
    iter_contacts_between,
)
from orbitq.services.db.engine import IN_LIST_VALUES_MAX
from orbitq.services.errors import InvalidArgumentError, NotFoundError
from orbitq.services.orbits import HORIZON_HOURS_MAX, ElementSet, GroundStation, compute_contacts

BOOKINGS: sa.Table = SQLModel.metadata.tables["station_bookings"]
BOOKED: sa.Table = SQLModel.metadata.tables["booked_contacts"]
# Booked windows not yet over, across all stations, after an import.
BOOKED_WINDOWS_STORED_MAX = 100_000
# Booked windows one read of the contacts in use holds (the stored limit, plus a week's ended
# windows kept on record, fits within it).
BOOKED_WINDOWS_READ_MAX = 2 * BOOKED_WINDOWS_STORED_MAX
_HORIZON_NS = int(HORIZON_HOURS_MAX * 3600) * NANOS_PER_SECOND
_RETENTION_NS = int(CONTACT_RETENTION_DAYS_DEFAULT * 86_400) * NANOS_PER_SECOND


@dataclass(frozen=True, slots=True)
class BookingReport:
    windows: int
    stations: tuple[str, ...]
    replaced: int
    warnings: tuple[str, ...]
    not_visible: int
    dry_run: bool


@dataclass(frozen=True, slots=True)
class _Checked:
    window: BookedWindow
    visible_ns: int
    max_elevation_deg: float


def booked_id(node: str, station: str, start_ns: int) -> str:
    return f"b-{node}-{station}-{start_ns // NANOS_PER_SECOND}"


# -- importing ---------------------------------------------------------------------------------


def import_plan(
    engine: sa.Engine,
    plan: ParsedPlan,
    default_mode: BookingMode,
    now_ns: int,
    *,
    dry_run: bool,
) -> BookingReport:
    with engine.connect() as connection:
        elements, stations = _world(connection, plan.windows, plan.modes)
    _check_windows(plan.windows, stations, now_ns)
    modes: dict[str, str] = {w.station: default_mode for w in plan.windows}
    modes.update(plan.modes)
    computed_with_windows = sorted(
        {w.station for w in plan.windows if modes[w.station] == "computed"}
    )
    if computed_with_windows:
        raise InvalidArgumentError(
            f"station(s) {', '.join(computed_with_windows[:10])} are given mode computed (no"
            " booked plan) but have booked windows: give them replace or restrict"
        )
    checked = _visibility(plan.windows, elements, stations)
    warnings, not_visible = _warnings(checked)
    named = sorted(modes)
    if dry_run:
        with engine.connect() as connection:
            replaced = _count_replaced(connection, named, now_ns)
        return BookingReport(
            len(checked), tuple(named), replaced, warnings, not_visible, dry_run=True
        )
    with t.writing(engine) as (connection, head):
        replaced = _count_replaced(connection, named, now_ns)
        for batch in t.batches(named, IN_LIST_VALUES_MAX):
            connection.execute(
                sa.delete(BOOKED).where(BOOKED.c.station.in_(batch), BOOKED.c.los_ns > now_ns)
            )
            connection.execute(sa.delete(BOOKINGS).where(BOOKINGS.c.station.in_(batch)))
        connection.execute(sa.delete(BOOKED).where(BOOKED.c.los_ns < now_ns - _RETENTION_NS))
        rows = [_row(c) for c in checked]
        for batch in t.batches([r["id"] for r in rows], IN_LIST_VALUES_MAX):
            # An ended window of the same pair and start second (history) gives way.
            connection.execute(sa.delete(BOOKED).where(BOOKED.c.id.in_(batch)))
        for batch in t.batches(rows, t.BATCH_ROWS):
            connection.execute(sa.insert(BOOKED), batch)
        mode_rows = [
            {"station": s, "mode": m, "imported_ns": now_ns}
            for s, m in sorted(modes.items())
            if m != "computed"
        ]
        if mode_rows:
            connection.execute(sa.insert(BOOKINGS), mode_rows)
        stored = connection.execute(
            sa.select(sa.func.count()).select_from(BOOKED).where(BOOKED.c.los_ns > now_ns)
        ).scalar_one()
        if stored > BOOKED_WINDOWS_STORED_MAX:
            raise InvalidArgumentError(
                f"the broker would hold {stored:,} booked windows not yet over, more than"
                f" {BOOKED_WINDOWS_STORED_MAX:,}; import fewer or wait for some to end"
            )
        # The scheduler's world sync notices a new plan version and reads the contacts again.
        connection.execute(
            sa.update(t.PLAN).where(t.PLAN.c.id == t.PLAN_ROW_ID).values(version=head.version + 1)
        )
    return BookingReport(len(checked), tuple(named), replaced, warnings, not_visible, False)


def _row(checked: _Checked) -> dict[str, Any]:
    w = checked.window
    return {
        "id": booked_id(w.node, w.station, w.start_ns),
        "node": w.node,
        "station": w.station,
        "aos_ns": w.start_ns,
        "los_ns": w.end_ns,
        "antenna": w.antenna,
        "uplink_mbps": w.uplink_mbps,
        "downlink_mbps": w.downlink_mbps,
        "max_elevation_deg": checked.max_elevation_deg,
        "visible_ns": checked.visible_ns,
    }


def _count_replaced(connection: sa.Connection, stations: list[str], now_ns: int) -> int:
    total = 0
    for batch in t.batches(stations, IN_LIST_VALUES_MAX):
        total += connection.execute(
            sa.select(sa.func.count())
            .select_from(BOOKED)
            .where(BOOKED.c.station.in_(batch), BOOKED.c.los_ns > now_ns)
        ).scalar_one()
    return int(total)


def _world(
    connection: sa.Connection, windows: Sequence[BookedWindow], modes: Mapping[str, str]
) -> tuple[dict[str, ElementSet], dict[str, GroundStation]]:
    """The element sets and stations the plan names; NotFoundError naming the unknown ones."""
    node_ids = sorted({w.node for w in windows})
    station_ids = sorted({w.station for w in windows} | set(modes))
    elements: dict[str, ElementSet] = {}
    for batch in t.batches(node_ids, IN_LIST_VALUES_MAX):
        for row in connection.execute(sa.select(t.NODES).where(t.NODES.c.id.in_(batch))):
            elements[row.id] = t.element_set_of(row)
    stations: dict[str, GroundStation] = {}
    for batch in t.batches(station_ids, IN_LIST_VALUES_MAX):
        for row in connection.execute(sa.select(t.STATIONS).where(t.STATIONS.c.id.in_(batch))):
            stations[row.id] = t.station_of(row)
    problems = [
        f"{w.where.unit} {w.where.line}: unknown node {w.node} (import it with orbitq node import)"
        for w in windows
        if w.node not in elements
    ] + [
        f"{w.where.unit} {w.where.line}: unknown station {w.station} (add it with orbitq"
        " station add or import)"
        for w in windows
        if w.station not in stations
    ]
    problems += [f'"stations": unknown station {s}' for s in sorted(modes) if s not in stations]
    if problems:
        raise NotFoundError(
            problems_message(
                "the contact plan names nodes or stations the broker does not have; nothing"
                " was imported:",
                problems,
            )
        )
    return elements, stations


def _check_windows(
    windows: Sequence[BookedWindow], stations: Mapping[str, GroundStation], now_ns: int
) -> None:
    problems = _time_problems(windows, stations, now_ns) + _overlap_problems(windows, stations)
    if problems:
        raise InvalidArgumentError(
            problems_message(
                f"the contact plan has {len(problems)} problem(s); nothing was imported:",
                problems,
            )
        )


def _time_problems(
    windows: Sequence[BookedWindow], stations: Mapping[str, GroundStation], now_ns: int
) -> list[str]:
    problems: list[str] = []
    for w in windows:
        if w.end_ns <= now_ns:
            problems.append(f"{w.label()}: is already over; book windows that end in the future")
        elif w.end_ns > now_ns + _HORIZON_NS:
            problems.append(
                f"{w.label()}: ends more than {HORIZON_HOURS_MAX:g} h from now, beyond any"
                " contact horizon; import it later"
            )
        antennas = stations[w.station].antennas
        if w.antenna > antennas:
            problems.append(
                f"{w.label()}: antenna {w.antenna}, but station {w.station} has {antennas}"
            )
    return problems


def _overlap_problems(
    windows: Sequence[BookedWindow], stations: Mapping[str, GroundStation]
) -> list[str]:
    problems: list[str] = []
    by_pair: dict[tuple[str, str], list[BookedWindow]] = defaultdict(list)
    by_antenna: dict[tuple[str, int], list[BookedWindow]] = defaultdict(list)
    by_station: dict[str, list[BookedWindow]] = defaultdict(list)
    for w in windows:
        by_pair[(w.node, w.station)].append(w)
        by_station[w.station].append(w)
        if w.antenna:
            by_antenna[(w.station, w.antenna)].append(w)
    for group in itertools.chain(by_pair.values(), by_antenna.values()):
        group.sort(key=lambda w: (w.start_ns, w.end_ns))
        for before, after in itertools.pairwise(group):
            if after.start_ns < before.end_ns:
                what = (
                    f"antenna {after.antenna}"
                    if after.antenna and before.antenna == after.antenna
                    else f"node {after.node}"
                )
                problems.append(
                    f"{after.label()}: overlaps {before.where.unit} {before.where.line} on"
                    f" {what} at {after.station}"
                )
    for station, group in by_station.items():
        antennas = stations[station].antennas
        ends: list[int] = []
        for w in sorted(group, key=lambda w: (w.start_ns, w.end_ns)):
            while ends and ends[0] <= w.start_ns:
                heapq.heappop(ends)
            heapq.heappush(ends, w.end_ns)
            if len(ends) > antennas:
                problems.append(
                    f"{w.label()}: {len(ends)} windows at once at station {station}, which has"
                    f" {antennas} antenna(s)"
                )
    return problems


def _visibility(
    windows: Sequence[BookedWindow],
    elements: Mapping[str, ElementSet],
    stations: Mapping[str, GroundStation],
) -> list[_Checked]:
    """Each window with how long the computed geometry sees the satellite inside it."""
    if not windows:
        return []
    node_ids = sorted({w.node for w in windows})
    station_ids = sorted({w.station for w in windows})
    start = min(w.start_ns for w in windows)
    end = max(w.end_ns for w in windows)
    passes: dict[tuple[str, str], list[tuple[int, int, float]]] = defaultdict(list)
    # compute_contacts covers at most HORIZON_HOURS_MAX a call: longer spans go in pieces (a
    # pass cut at a seam is two pieces, which add up the same).
    piece = _HORIZON_NS - NANOS_PER_SECOND
    for first in range(start, end, piece):
        for found in compute_contacts(
            [elements[n] for n in node_ids],
            [stations[s] for s in station_ids],
            from_ns(first),
            from_ns(min(first + piece, end)) + timedelta(microseconds=1),
        ):
            aos, los = to_ns(found.aos), to_ns(found.los)
            passes[(found.node, found.station)].append((aos, los, found.max_elevation_deg))
    checked = []
    for w in windows:
        visible, elevation = 0, 0.0
        for aos, los, peak in passes.get((w.node, w.station), ()):
            overlap = min(los, w.end_ns) - max(aos, w.start_ns)
            if overlap > 0:
                visible += overlap
                elevation = max(elevation, peak)
        checked.append(_Checked(w, min(visible, w.end_ns - w.start_ns), elevation))
    return checked


def _warnings(checked: Iterable[_Checked]) -> tuple[tuple[str, ...], int]:
    warnings: list[str] = []
    not_visible = 0
    for c in checked:
        length = c.window.end_ns - c.window.start_ns
        # A second of slack: computed windows are refined to the second.
        if c.visible_ns + NANOS_PER_SECOND >= length:
            continue
        if c.visible_ns == 0:
            not_visible += 1
            text = f"{c.window.label()}: the satellite is not visible from the station at all"
        else:
            text = (
                f"{c.window.label()}: the satellite is visible for only"
                f" {c.visible_ns // NANOS_PER_SECOND} of {length // NANOS_PER_SECOND} s"
            )
        if len(warnings) < PROBLEMS_REPORTED_MAX:
            warnings.append(text)
    return tuple(warnings), not_visible


# -- the contacts in use -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bookings:
    """The stations with a booked plan, and their booked windows overlapping a query."""

    modes: Mapping[str, BookingMode]
    windows: Sequence[StoredContact]


def load(connection: sa.Connection, query: ContactQuery) -> Bookings | None:
    """None when no station (of the query) has a booked plan: the computed plan stands."""
    select_modes = sa.select(BOOKINGS.c.station, BOOKINGS.c.mode)
    if query.station:
        select_modes = select_modes.where(BOOKINGS.c.station == query.station)
    modes = {row.station: cast(BookingMode, row.mode) for row in connection.execute(select_modes)}
    if not modes:
        return None
    windows: list[StoredContact] = []
    for batch in t.batches(sorted(modes), IN_LIST_VALUES_MAX):
        conditions: list[Any] = [BOOKED.c.station.in_(batch)]
        if query.node:
            conditions.append(BOOKED.c.node == query.node)
        if query.start_ns is not None:
            conditions.append(BOOKED.c.los_ns > query.start_ns)
        if query.end_ns is not None:
            conditions.append(BOOKED.c.aos_ns < query.end_ns)
        rows = connection.execute(
            sa.select(
                BOOKED.c.id,
                BOOKED.c.node,
                BOOKED.c.station,
                BOOKED.c.aos_ns,
                BOOKED.c.los_ns,
                BOOKED.c.max_elevation_deg,
            )
            .where(*conditions)
            .order_by(BOOKED.c.aos_ns, BOOKED.c.id)
            .limit(BOOKED_WINDOWS_READ_MAX)
        )
        windows.extend(t.contact_of(row) for row in rows)
    windows.sort(key=lambda c: (c.aos_ns, c.id))
    return Bookings(modes, windows[:BOOKED_WINDOWS_READ_MAX])


def effective(
    engine: sa.Engine, query: ContactQuery, bookings: Bookings
) -> Iterator[list[StoredContact]]:
    """The contacts `query` selects with the booked plans applied, by (aos, id), in batches."""
    booked_stations = set(bookings.modes)
    derived = [w for w in bookings.windows if bookings.modes[w.station] == "replace"]
    restricted: dict[tuple[str, str], list[StoredContact]] = defaultdict(list)
    for w in bookings.windows:
        if bookings.modes[w.station] == "restrict":
            restricted[(w.node, w.station)].append(w)
    for station in sorted({station for _, station in restricted}):
        station_query = ContactQuery(query.node, station, query.start_ns, query.end_ns)
        for batch in iter_contacts_between(engine, station_query):
            for computed in batch:
                for w in restricted.get((computed.node, station), ()):
                    aos, los = max(w.aos_ns, computed.aos_ns), min(w.los_ns, computed.los_ns)
                    if aos < los:
                        derived.append(
                            StoredContact(
                                f"r-{computed.node}-{station}-{aos}",
                                computed.node,
                                station,
                                aos,
                                los,
                                computed.max_elevation_deg,
                            )
                        )
    derived = [
        c
        for c in derived
        if (query.start_ns is None or c.los_ns > query.start_ns)
        and (query.end_ns is None or c.aos_ns < query.end_ns)
    ]
    derived.sort(key=lambda c: (c.aos_ns, c.id))
    computed_rest = (
        c
        for batch in iter_contacts_between(engine, query)
        for c in batch
        if c.station not in booked_stations
    )
    merged = heapq.merge(computed_rest, derived, key=lambda c: (c.aos_ns, c.id))
    while batch := list(itertools.islice(merged, READ_BATCH_ROWS)):
        yield batch
