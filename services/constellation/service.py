"""`Constellation`: the broker's nodes, ground stations and contact plan, in one object.

Owns: the entry points the ConstellationService servicer and the in-process users (the request
service, which builds the scheduler's world from `nodes()`, `stations()` and
`contacts_between()`) call; one lock so refreshes of the plan never overlap in this process;
telling the broker (`on_change`) when the world changed so it refreshes the plan soon; and who
may call what (checked here, first, against the caller's Principal):

| method | operator | tenant key | node key |
| --- | --- | --- | --- |
| `import_nodes`, `set_node_state`, `upsert_station`, `import_stations` | yes | no | no |
| `import_contact_plan` | yes | no | no |
| `list_nodes`, `list_stations`, `list_contacts` | yes | yes | yes, of every node |

The sky is readable by every key: tenants choose node and station selectors from it, and the
contact windows follow from public orbital elements; nothing in it is a tenant's.
The other methods (`node`, `nodes`, `changed_nodes`, `stations`, `refresh_contacts`, `plan`,
`world_version`, `contacts_between`) are for in-process callers (the request service, the
broker's jobs); `contacts_between` gives the contacts in use: computed ones, with booked
plans applied (booked.py).

Does not own: the schedule of refreshes (the broker's APScheduler jobs call
`refresh_contacts`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

import sqlalchemy as sa

from orbitq.services.auth import ANY_ROLE, Principal
from orbitq.services.clock import to_ns
from orbitq.services.constellation import booked as booked_rules
from orbitq.services.constellation import nodes as node_rules
from orbitq.services.constellation import plan as plan_rules
from orbitq.services.constellation import stations as station_rules
from orbitq.services.constellation.booked import BookingReport
from orbitq.services.constellation.booking import BookingMode, parse_plan
from orbitq.services.constellation.model import (
    ContactPlan,
    ImportReport,
    NodeImport,
    NodeRecord,
    NodeState,
    RefreshReport,
    StoredContact,
    WorldVersion,
)
from orbitq.services.constellation.plan import (
    CONTACT_HORIZON_HOURS_DEFAULT,
    CONTACT_RETENTION_DAYS_DEFAULT,
    ContactQuery,
)
from orbitq.services.constellation.tables import read_plan, read_world_version
from orbitq.services.orbits import GroundStation

log = logging.getLogger(__name__)


def _nothing() -> None:
    pass


class Constellation:
    def __init__(
        self,
        engine: sa.Engine,
        now: Callable[[], datetime],
        on_change: Callable[[], None] = _nothing,
    ) -> None:
        self._engine = engine
        self._now = now
        self._on_change = on_change
        self._refresh_lock = threading.Lock()

    # -- nodes ---------------------------------------------------------------------------------

    def import_nodes(self, principal: Principal, spec: NodeImport) -> ImportReport:
        """Upsert nodes from element-set text (rules in orbitq.services.constellation.nodes)."""
        principal.require_operator("importing nodes")
        now = self._now()
        report = node_rules.import_nodes(self._engine, spec, now, to_ns(now))
        if report.created or report.updated:
            self._on_change()
        return report

    def list_nodes(
        self,
        principal: Principal,
        labels: Mapping[str, str] | None = None,
        state: NodeState | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[NodeRecord], str]:
        principal.require_role(*ANY_ROLE, action="listing nodes")
        with self._engine.connect() as connection:
            return node_rules.list_nodes(connection, labels or {}, state, page_size, page_token)

    def node(self, node_id: str) -> NodeRecord:
        """One node; NotFoundError if there is none with this id."""
        with self._engine.connect() as connection:
            return node_rules.get_node(connection, node_id)

    def nodes(
        self, labels: Mapping[str, str] | None = None, state: NodeState | None = None
    ) -> list[NodeRecord]:
        """Every node (carrying all of `labels`, in `state`), by NORAD id."""
        with self._engine.connect() as connection:
            return node_rules.all_nodes(connection, labels or {}, state)

    def changed_nodes(self, since: int) -> list[NodeRecord]:
        """The nodes written after world revision `since` (`WorldVersion.world_revision`)."""
        with self._engine.connect() as connection:
            return node_rules.changed_nodes(connection, since)

    def set_node_state(self, principal: Principal, node_id: str, state: NodeState) -> NodeRecord:
        principal.require_operator("changing a node's state")
        return node_rules.set_node_state(self._engine, node_id, state, to_ns(self._now()))

    # -- stations ------------------------------------------------------------------------------

    def upsert_station(
        self, principal: Principal, station: GroundStation
    ) -> tuple[GroundStation, bool]:
        """Store `station` (already valid: GroundStation validates itself); True if new."""
        principal.require_operator("changing ground stations")
        created, _, changed = station_rules.upsert_stations(
            self._engine, [station], to_ns(self._now())
        )
        if changed:
            self._on_change()
        return station, created == 1

    def import_stations(self, principal: Principal, text: str) -> tuple[int, int]:
        """Upsert every station of a CSV or JSON list, or none: (created, updated)."""
        principal.require_operator("changing ground stations")
        created, updated, changed = station_rules.import_stations(
            self._engine, text, to_ns(self._now())
        )
        if changed:
            self._on_change()
        return created, updated

    def list_stations(
        self, principal: Principal, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[GroundStation], str]:
        principal.require_role(*ANY_ROLE, action="listing ground stations")
        with self._engine.connect() as connection:
            return station_rules.list_stations(connection, page_size, page_token)

    def stations(self) -> list[GroundStation]:
        """Every station, by id."""
        with self._engine.connect() as connection:
            return station_rules.all_stations(connection)

    # -- the contact plan ----------------------------------------------------------------------

    def refresh_contacts(
        self,
        now: datetime | None = None,
        horizon_hours: float = CONTACT_HORIZON_HOURS_DEFAULT,
        retention_days: float = CONTACT_RETENTION_DAYS_DEFAULT,
    ) -> RefreshReport:
        """Recompute and store contacts over [now, now + horizon) (default now: the clock's);
        contacts that ended more than `retention_days` ago are pruned. Idempotent."""
        with self._refresh_lock:
            at = now or self._now()
            world_nodes = self.nodes()
            world_stations = self.stations()
            report = plan_rules.refresh(
                self._engine,
                [node.elements for node in world_nodes],
                world_stations,
                at,
                horizon_hours,
                retention_days,
            )
        log.info(
            "contact plan refreshed: %d nodes x %d stations, %d windows; %d new, %d moved,"
            " %d gone, %d pruned%s",
            len(world_nodes),
            len(world_stations),
            report.computed,
            report.inserted,
            report.updated,
            report.deleted + report.truncated,
            report.pruned,
            "" if report.applied else " (not applied: another refresh replaced the plan)",
        )
        return report

    def plan(self) -> ContactPlan:
        """What the last refresh covered."""
        with self._engine.connect() as connection:
            return read_plan(connection)

    def world_version(self, connection: sa.Connection | None = None) -> WorldVersion:
        """A cheap fingerprint of nodes, stations and the contact plan (see WorldVersion);
        read through `connection` when given (a caller's reads in one connection)."""
        if connection is not None:
            return read_world_version(connection)
        with self._engine.connect() as reading:
            return read_world_version(reading)

    def list_contacts(
        self, principal: Principal, query: ContactQuery, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[StoredContact], str]:
        principal.require_role(*ANY_ROLE, action="listing contacts")
        with self._engine.connect() as connection:
            return plan_rules.list_contacts(connection, query, page_size, page_token)

    def contacts_between(
        self, start: datetime, end: datetime, *, node: str = "", station: str = ""
    ) -> list[StoredContact]:
        """Every stored contact overlapping [start, end), ordered by (aos, id)."""
        return [
            contact
            for batch in self.iter_contacts_between(start, end, node=node, station=station)
            for contact in batch
        ]

    def iter_contacts_between(
        self, start: datetime, end: datetime, *, node: str = "", station: str = ""
    ) -> Iterator[list[StoredContact]]:
        """The same contacts as `contacts_between`, in bounded batches (memory stays flat)."""
        query = ContactQuery(node, station, to_ns(start), to_ns(end)).check()
        with self._engine.connect() as connection:
            bookings = booked_rules.load(connection, query)
        if bookings is None:
            return plan_rules.iter_contacts_between(self._engine, query)
        return booked_rules.effective(self._engine, query, bookings)

    # -- booked contact plans ------------------------------------------------------------------

    def import_contact_plan(
        self,
        principal: Principal,
        text: str,
        fmt: str = "auto",
        default_mode: BookingMode = "replace",
        *,
        dry_run: bool = False,
    ) -> BookingReport:
        """Booked windows from a ground network (rules in booked.py and booking.py)."""
        principal.require_operator("importing a contact plan")
        plan = parse_plan(text, fmt)
        report = booked_rules.import_plan(
            self._engine, plan, default_mode, to_ns(self._now()), dry_run=dry_run
        )
        if not dry_run:
            log.info(
                "contact plan imported: %d booked window(s) at %d station(s), %d replaced,"
                " %d where the satellite is not visible",
                report.windows,
                len(report.stations),
                report.replaced,
                report.not_visible,
            )
        return report
