"""Ground stations: upserting one, importing a list (parsed here, on the broker), listing.

Owns: the station rules of the broker — a station is valid as `GroundStation` says (each bad
field named), a list is parsed with `orbitq.services.orbits.parse_stations` and upserted in one
transaction or, when any record is bad, not at all; at most STATIONS_MAX stations in all.
Does not own: station validation itself (orbitq.services.orbits.stations).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from orbitq.services import pagination
from orbitq.services.constellation.model import (
    STATION_TEXT_BYTES_MAX,
    STATIONS_MAX,
    problems_message,
)
from orbitq.services.constellation.tables import (
    STATIONS,
    batches,
    station_of,
    station_values,
    writing,
)
from orbitq.services.db.engine import IN_LIST_VALUES_MAX
from orbitq.services.errors import InvalidArgumentError, ResourceExhaustedError
from orbitq.services.orbits import GroundStation, parse_stations


def upsert_stations(
    engine: sa.Engine, stations: list[GroundStation], now_ns: int
) -> tuple[int, int, int]:
    """Insert or update `stations` in one transaction: (created, updated, changed)."""
    ids = [station.id for station in stations]
    assert len(set(ids)) == len(ids), "station ids must be unique within one upsert"
    created = updated = changed = 0
    with writing(engine, world=True) as (connection, _):
        existing: dict[str, GroundStation] = {}
        for batch in batches(ids, IN_LIST_VALUES_MAX):
            query = sa.select(STATIONS).where(STATIONS.c.id.in_(batch))
            existing.update((row.id, station_of(row)) for row in connection.execute(query))
        new = len(ids) - len(existing)
        if new:
            count = connection.execute(
                sa.select(sa.func.count()).select_from(STATIONS)
            ).scalar_one()
            if count + new > STATIONS_MAX:
                raise ResourceExhaustedError(
                    f"the broker holds {count} stations; {new} more would exceed {STATIONS_MAX}"
                )
        for station in stations:
            values: dict[str, Any] = station_values(station)
            before = existing.get(station.id)
            if before is None:
                values.update(created_ns=now_ns, updated_ns=now_ns)
                connection.execute(sa.insert(STATIONS), values)
                created += 1
                changed += 1
                continue
            updated += 1
            if before != station:
                values.update(updated_ns=now_ns)
                connection.execute(
                    sa.update(STATIONS).where(STATIONS.c.id == station.id).values(values)
                )
                changed += 1
    return created, updated, changed


def import_stations(engine: sa.Engine, text: str, now_ns: int) -> tuple[int, int, int]:
    """Parse a CSV or JSON station list and upsert all of it, or nothing if any record is bad."""
    size = len(text.encode("utf-8"))
    if size > STATION_TEXT_BYTES_MAX:
        raise InvalidArgumentError(
            f"the station list is {size:,} bytes; at most {STATION_TEXT_BYTES_MAX:,}"
        )
    parsed = parse_stations(text)
    if parsed.problems:
        head = (
            f"{len(parsed.problems)} bad station record(s); nothing was imported (fix them and"
            " import again):"
        )
        raise InvalidArgumentError(problems_message(head, parsed.problems))
    if not parsed.stations:
        raise InvalidArgumentError(
            "no stations in the text: expected CSV with a header row or a JSON list"
        )
    if len(parsed.stations) > STATIONS_MAX:
        raise InvalidArgumentError(
            f"the list holds {len(parsed.stations)} stations; at most {STATIONS_MAX}"
        )
    return upsert_stations(engine, parsed.stations, now_ns)


def list_stations(
    connection: sa.Connection, page_size: int, page_token: str
) -> tuple[list[GroundStation], str]:
    size = pagination.page_size(page_size)
    after = pagination.decode_token(page_token, "stations", pagination.TEXT)
    query = sa.select(STATIONS).order_by(STATIONS.c.id).limit(size + 1)
    if after is not None:
        query = query.where(STATIONS.c.id > str(after))
    rows = list(connection.execute(query))
    next_token = ""
    if len(rows) > size:
        rows = rows[:size]
        next_token = pagination.encode_token(rows[-1].id, "stations")
    return [station_of(row) for row in rows], next_token


def all_stations(connection: sa.Connection) -> list[GroundStation]:
    return [
        station_of(row) for row in connection.execute(sa.select(STATIONS).order_by(STATIONS.c.id))
    ]
