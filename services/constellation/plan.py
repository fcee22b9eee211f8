"""The contact plan: contact windows of every node x station over a rolling horizon, stored.

Owns the refresh (docs/orbits.md, "Serving the sky", has the rules with their reasons):

1. Compute [now, now + horizon) for all nodes x stations, one satellite chunk at a time
   (`satellite_chunks`: the same memory-bounded blocks as `iter_contacts`), with no database
   lock held.
2. Per chunk, diff against the stored contacts of its nodes that are not over yet (los > now),
   per (node, station), matching windows that overlap in time. A matched contact keeps its id
   and is rewritten only if it moved by more than SAME_TOLERANCE_NS (so recomputation jitter,
   microseconds, writes nothing); a contact in progress keeps its stored AOS (the computation
   starts at `now` and clips it); a new window gets the id `c-<node>-<station>-<aos in unix
   seconds>`; a stored contact the computation no longer sees is deleted, or, when it was in
   progress, ends at `now` (it happened, so it stays on the record).
3. Apply the whole diff in one short write transaction (atomic for readers), together with the
   pruning of contacts that ended more than the retention ago, unless another refresh (another
   replica) applied a plan in between: then this one is dropped (`applied=False`).
Contacts that are over (los <= now) are never rewritten. The diff is kept as packed arrays
(~40 bytes a window), so even the first refresh of a large constellation holds only the packed
plan, not ContactWindow objects.

Also owns reading contacts: pages for ListContacts and the in-process reads the request
service builds the scheduler's world from.
Does not own: the orbital computation (orbitq.services.orbits) or scheduling the refresh
(orbitq.services.broker runs it from APScheduler).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from orbitq.services import pagination
from orbitq.services.clock import NANOS_PER_SECOND, to_ns
from orbitq.services.constellation.model import ContactPlan, RefreshReport, StoredContact
from orbitq.services.constellation.tables import (
    BATCH_ROWS,
    CONTACT_COLUMNS,
    CONTACTS,
    PLAN,
    PLAN_ROW_ID,
    batches,
    contact_of,
    read_plan,
    writing,
)
from orbitq.services.db.engine import IN_LIST_VALUES_MAX
from orbitq.services.db.models import NODE_ID_CHARS_MAX, STATION_ID_CHARS_MAX
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.orbits import (
    HORIZON_HOURS_MAX,
    ContactWindow,
    ElementSet,
    GroundStation,
    compute_contacts_chunk,
    satellite_chunks,
)

CONTACT_HORIZON_HOURS_DEFAULT = 24.0
CONTACT_RETENTION_DAYS_DEFAULT = 7.0
CONTACT_RETENTION_DAYS_MAX = 366.0
# A recomputed contact within this of the stored one is the same contact, left untouched.
SAME_TOLERANCE_NS = 100_000_000
SAME_ELEVATION_DEG = 0.01
# Contacts that ended this recently are read too, so a new id never repeats theirs.
_ID_LOOKBACK_NS = NANOS_PER_SECOND
# Rows per read of `iter_contacts_between`.
READ_BATCH_ROWS = 10_000

Pair = tuple[str, str]


def contact_id(node: str, station: str, aos_ns: int, suffix: int = 0) -> str:
    base = f"c-{node}-{station}-{aos_ns // NANOS_PER_SECOND}"
    return base if suffix == 0 else f"{base}-{suffix}"


def check_horizon(horizon_hours: float, retention_days: float) -> None:
    if not 0 < horizon_hours <= HORIZON_HOURS_MAX:
        raise ValueError(
            f"contact horizon of {horizon_hours:g} h is outside (0, {HORIZON_HOURS_MAX:g}] h"
        )
    if not 0 <= retention_days <= CONTACT_RETENTION_DAYS_MAX:
        raise ValueError(
            f"contact retention of {retention_days:g} days is outside"
            f" [0, {CONTACT_RETENTION_DAYS_MAX:g}]"
        )


@dataclass
class _Diff:
    """What a refresh will write, packed: inserts and updates as parallel arrays."""

    names: list[str] = field(default_factory=list)
    name_index: dict[str, int] = field(default_factory=dict)
    insert_node: array[int] = field(default_factory=lambda: array("i"))
    insert_station: array[int] = field(default_factory=lambda: array("i"))
    insert_suffix: array[int] = field(default_factory=lambda: array("i"))
    insert_aos: array[int] = field(default_factory=lambda: array("q"))
    insert_los: array[int] = field(default_factory=lambda: array("q"))
    insert_elevation: array[float] = field(default_factory=lambda: array("d"))
    update_ids: list[str] = field(default_factory=list)
    update_aos: array[int] = field(default_factory=lambda: array("q"))
    update_los: array[int] = field(default_factory=lambda: array("q"))
    update_elevation: array[float] = field(default_factory=lambda: array("d"))
    deleted: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    computed: int = 0
    unchanged: int = 0
    longest_ns: int = 0

    def _name(self, name: str) -> int:
        index = self.name_index.get(name)
        if index is None:
            index = self.name_index[name] = len(self.names)
            self.names.append(name)
        return index

    def insert(self, pair: Pair, aos: int, los: int, elevation: float, taken: set[str]) -> None:
        suffix = 0
        while contact_id(*pair, aos, suffix) in taken:
            suffix += 1
        taken.add(contact_id(*pair, aos, suffix))
        self.insert_node.append(self._name(pair[0]))
        self.insert_station.append(self._name(pair[1]))
        self.insert_suffix.append(suffix)
        self.insert_aos.append(aos)
        self.insert_los.append(los)
        self.insert_elevation.append(elevation)
        self.longest_ns = max(self.longest_ns, los - aos)

    def match(self, stored: StoredContact, aos: int, los: int, elevation: float, now: int) -> None:
        if aos <= now < stored.los_ns and stored.aos_ns < now:
            # In progress: the computation starts at `now` and clipped it; the stored AOS is real.
            aos, elevation = stored.aos_ns, max(elevation, stored.max_elevation_deg)
        # Within the tolerance a stored value stands, so jitter never moves a contact.
        if abs(aos - stored.aos_ns) <= SAME_TOLERANCE_NS:
            aos = stored.aos_ns
        if abs(los - stored.los_ns) <= SAME_TOLERANCE_NS:
            los = stored.los_ns
        if abs(elevation - stored.max_elevation_deg) <= SAME_ELEVATION_DEG:
            elevation = stored.max_elevation_deg
        if (aos, los, elevation) == (stored.aos_ns, stored.los_ns, stored.max_elevation_deg):
            self.unchanged += 1
            return
        self.update_ids.append(stored.id)
        self.update_aos.append(aos)
        self.update_los.append(los)
        self.update_elevation.append(elevation)
        self.longest_ns = max(self.longest_ns, los - aos)

    def drop(self, stored: StoredContact, now: int) -> None:
        if stored.aos_ns < now:
            self.truncated.append(stored.id)
        else:
            self.deleted.append(stored.id)

    def insert_rows(self, first: int, last: int) -> list[dict[str, Any]]:
        rows = []
        for i in range(first, min(last, len(self.insert_aos))):
            node, station = self.names[self.insert_node[i]], self.names[self.insert_station[i]]
            aos = self.insert_aos[i]
            rows.append(
                {
                    "id": contact_id(node, station, aos, self.insert_suffix[i]),
                    "node": node,
                    "station": station,
                    "aos_ns": aos,
                    "los_ns": self.insert_los[i],
                    "max_elevation_deg": self.insert_elevation[i],
                }
            )
        return rows

    def update_rows(self, first: int, last: int) -> list[dict[str, Any]]:
        return [
            {
                "key": self.update_ids[i],
                "aos_ns": self.update_aos[i],
                "los_ns": self.update_los[i],
                "max_elevation_deg": self.update_elevation[i],
            }
            for i in range(first, min(last, len(self.update_ids)))
        ]


def _diff_chunk(
    diff: _Diff, windows: list[ContactWindow], stored: list[StoredContact], now: int
) -> None:
    computed: dict[Pair, list[tuple[int, int, float]]] = {}
    for window in windows:
        aos, los = to_ns(window.aos), to_ns(window.los)
        if los > aos:
            computed.setdefault((window.node, window.station), []).append(
                (aos, los, window.max_elevation_deg)
            )
    diff.computed += len(windows)
    kept: dict[Pair, list[StoredContact]] = {}
    for contact in stored:
        kept.setdefault((contact.node, contact.station), []).append(contact)
    for pair in sorted(computed.keys() | kept.keys()):
        fresh = sorted(computed.get(pair, []))
        known = kept.get(pair, [])
        taken = {contact.id for contact in known}
        live = sorted((c for c in known if c.los_ns > now), key=lambda c: c.aos_ns)
        i = j = 0
        while i < len(fresh) and j < len(live):
            aos, los, elevation = fresh[i]
            if los <= live[j].aos_ns:
                diff.insert(pair, aos, los, elevation, taken)
                i += 1
            elif live[j].los_ns <= aos:
                diff.drop(live[j], now)
                j += 1
            else:
                diff.match(live[j], aos, los, elevation, now)
                i += 1
                j += 1
        for aos, los, elevation in fresh[i:]:
            diff.insert(pair, aos, los, elevation, taken)
        for contact in live[j:]:
            diff.drop(contact, now)


def _stored(
    connection: sa.Connection, nodes: Sequence[str], now: int, longest_ns: int
) -> list[StoredContact]:
    """Contacts of `nodes` not over by now - 1 s (those over are never rewritten)."""
    since = now - _ID_LOOKBACK_NS
    found: list[StoredContact] = []
    for batch in batches(list(nodes), IN_LIST_VALUES_MAX):
        query = sa.select(*CONTACT_COLUMNS).where(
            CONTACTS.c.node.in_(batch),
            CONTACTS.c.aos_ns >= since - longest_ns,
            CONTACTS.c.los_ns > since,
        )
        found.extend(contact_of(row) for row in connection.execute(query))
    return found


def refresh(
    engine: sa.Engine,
    elements: Sequence[ElementSet],
    stations: Sequence[GroundStation],
    now: datetime,
    horizon_hours: float,
    retention_days: float,
) -> RefreshReport:
    """Recompute the plan over [now, now + horizon) and store it (rules 1-3 above).

    Idempotent: a second refresh at the same `now` on the same world writes no contact."""
    check_horizon(horizon_hours, retention_days)
    end = now + timedelta(hours=horizon_hours)
    now_ns, end_ns = to_ns(now), to_ns(end)
    with engine.connect() as connection:
        seen = read_plan(connection)
    diff = _Diff()
    # (1), (2): compute and diff chunk by chunk, holding no lock.
    for chunk in satellite_chunks(elements, len(stations), now, end):
        windows = compute_contacts_chunk(chunk, stations, now, end)
        with engine.connect() as connection:
            stored = _stored(
                connection, [str(e.norad_id) for e in chunk], now_ns, seen.longest_contact_ns
            )
        _diff_chunk(diff, windows, stored, now_ns)
    # (3): apply atomically.
    cutoff_ns = now_ns - math.floor(retention_days * 86_400) * NANOS_PER_SECOND
    with writing(engine) as (connection, head):
        if head.version != seen.version:
            return _report(diff, now_ns, end_ns, pruned=0, applied=False)
        pruned = connection.execute(
            sa.delete(CONTACTS).where(CONTACTS.c.aos_ns < cutoff_ns, CONTACTS.c.los_ns < cutoff_ns)
        ).rowcount
        _apply(connection, diff, now_ns)
        connection.execute(
            sa.update(PLAN)
            .where(PLAN.c.id == PLAN_ROW_ID)
            .values(
                version=head.version + 1,
                horizon_start_ns=now_ns,
                horizon_end_ns=end_ns,
                refreshed_ns=now_ns,
                longest_contact_ns=max(head.longest_contact_ns, diff.longest_ns),
            )
        )
    return _report(diff, now_ns, end_ns, pruned=pruned, applied=True)


def _apply(connection: sa.Connection, diff: _Diff, now_ns: int) -> None:
    for batch in batches(diff.deleted, IN_LIST_VALUES_MAX):
        connection.execute(sa.delete(CONTACTS).where(CONTACTS.c.id.in_(batch)))
    for batch in batches(diff.truncated, IN_LIST_VALUES_MAX):
        connection.execute(
            sa.update(CONTACTS).where(CONTACTS.c.id.in_(batch)).values(los_ns=now_ns)
        )
    update = sa.update(CONTACTS).where(CONTACTS.c.id == sa.bindparam("key"))
    for first in range(0, len(diff.update_ids), BATCH_ROWS):
        connection.execute(update, diff.update_rows(first, first + BATCH_ROWS))
    for first in range(0, len(diff.insert_aos), BATCH_ROWS):
        connection.execute(sa.insert(CONTACTS), diff.insert_rows(first, first + BATCH_ROWS))


def _report(
    diff: _Diff, start_ns: int, end_ns: int, *, pruned: int, applied: bool
) -> RefreshReport:
    return RefreshReport(
        horizon_start_ns=start_ns,
        horizon_end_ns=end_ns,
        computed=diff.computed,
        inserted=len(diff.insert_aos),
        updated=len(diff.update_ids),
        unchanged=diff.unchanged,
        deleted=len(diff.deleted),
        truncated=len(diff.truncated),
        pruned=pruned,
        applied=applied,
    )


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactQuery:
    """Contacts of `node` and `station` (empty: any) overlapping [start_ns, end_ns)."""

    node: str = ""
    station: str = ""
    start_ns: int | None = None
    end_ns: int | None = None

    def check(self) -> ContactQuery:
        if len(self.node) > NODE_ID_CHARS_MAX:
            raise InvalidArgumentError(f"node is longer than {NODE_ID_CHARS_MAX} characters")
        if len(self.station) > STATION_ID_CHARS_MAX:
            raise InvalidArgumentError(f"station is longer than {STATION_ID_CHARS_MAX} characters")
        if self.start_ns is not None and self.end_ns is not None and self.end_ns <= self.start_ns:
            raise InvalidArgumentError("end must be after start")
        return self


def _select(
    query: ContactQuery, plan: ContactPlan, after: tuple[int, str] | None
) -> sa.Select[Any]:
    conditions: list[Any] = []
    if query.node:
        conditions.append(CONTACTS.c.node == query.node)
    if query.station:
        conditions.append(CONTACTS.c.station == query.station)
    if query.start_ns is not None:
        # Overlap needs los > start; bounding aos from below too lets the aos index serve it.
        conditions.append(CONTACTS.c.los_ns > query.start_ns)
        conditions.append(CONTACTS.c.aos_ns >= query.start_ns - plan.longest_contact_ns)
    if query.end_ns is not None:
        conditions.append(CONTACTS.c.aos_ns < query.end_ns)
    if after is not None:
        conditions.append(sa.tuple_(CONTACTS.c.aos_ns, CONTACTS.c.id) > sa.tuple_(*after))
    return sa.select(*CONTACT_COLUMNS).where(*conditions).order_by(CONTACTS.c.aos_ns, CONTACTS.c.id)


def list_contacts(
    connection: sa.Connection, query: ContactQuery, page_size: int, page_token: str
) -> tuple[list[StoredContact], str]:
    query.check()
    size = pagination.page_size(page_size)
    position = pagination.decode_token(page_token, query, (pagination.INT, pagination.TEXT))
    after: tuple[int, str] | None = None
    if position is not None:
        if not (
            isinstance(position, list)
            and len(position) == 2
            and isinstance(position[0], int)
            and isinstance(position[1], str)
        ):
            raise InvalidArgumentError("malformed page_token: pass back next_page_token as given")
        after = (position[0], position[1])
    plan = read_plan(connection)
    rows = list(connection.execute(_select(query, plan, after).limit(size + 1)))
    contacts = [contact_of(row) for row in rows[:size]]
    next_token = ""
    if len(rows) > size:
        last = contacts[-1]
        next_token = pagination.encode_token([last.aos_ns, last.id], query)
    return contacts, next_token


def iter_contacts_between(
    engine: sa.Engine, query: ContactQuery, batch_rows: int = READ_BATCH_ROWS
) -> Iterator[list[StoredContact]]:
    """All contacts `query` selects, ordered by (aos, id), in lists of at most `batch_rows`."""
    query.check()
    after: tuple[int, str] | None = None
    while True:
        with engine.connect() as connection:
            plan = read_plan(connection)
            rows = list(connection.execute(_select(query, plan, after).limit(batch_rows)))
        if not rows:
            return
        contacts = [contact_of(row) for row in rows]
        yield contacts
        if len(rows) < batch_rows:
            return
        after = (contacts[-1].aos_ns, contacts[-1].id)
