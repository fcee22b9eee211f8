"""The constellation's rows: table handles, write transactions, and rows <-> values.

Owns: the one way to open a write transaction on the constellation (`writing`: SQLite BEGIN
IMMEDIATE, and on PostgreSQL a row lock on the contact plan's head row, which serialises writers
across replicas), and the exact conversions between rows and `NodeRecord`, `GroundStation`,
`StoredContact`, `ContactPlan`. An element set is stored as its TLE lines (when it came from
TLE) and always as its mean elements in JSON (Python writes floats with repr, so they read back
bit for bit); `element_set_of` rebuilds the identical `ElementSet` and checks it.
Does not own: any rule (nodes, stations, plan).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import SQLModel

from orbitq.services.clock import to_ns
from orbitq.services.constellation.model import (
    Capacity,
    ContactPlan,
    GroundLink,
    NodeAgentInfo,
    NodeRecord,
    NodeState,
    StoredContact,
    WorldVersion,
)
from orbitq.services.db import models  # noqa: F401  (registers the tables)
from orbitq.services.db.engine import IN_LIST_VALUES_MAX, driver_row, write_transaction
from orbitq.services.orbits import ElementSet, GroundStation

NODES: sa.Table = SQLModel.metadata.tables["nodes"]
NODE_AGENTS: sa.Table = SQLModel.metadata.tables["node_agents"]
STATIONS: sa.Table = SQLModel.metadata.tables["stations"]
CONTACTS: sa.Table = SQLModel.metadata.tables["contacts"]
PLAN: sa.Table = SQLModel.metadata.tables["contact_plan"]
PLAN_ROW_ID = 1
# Rows per statement of a bulk insert/update.
BATCH_ROWS = 5_000

_MEAN_FIELDS = tuple(
    f.name for f in fields(ElementSet) if f.name not in ("name", "epoch", "line1", "line2")
)


@contextmanager
def writing(
    engine: sa.Engine, *, world: bool = False
) -> Iterator[tuple[sa.Connection, ContactPlan]]:
    """A write transaction holding the constellation's lock; yields it with the plan's head.

    `world`: the transaction writes nodes or stations, so the plan row's `world_revision` is
    bumped with it (in the same transaction: a rollback takes the bump back too)."""
    with write_transaction(engine) as connection:
        row = connection.execute(
            sa.select(PLAN).where(PLAN.c.id == PLAN_ROW_ID).with_for_update()
        ).one()
        if world:
            connection.execute(
                sa.update(PLAN)
                .where(PLAN.c.id == PLAN_ROW_ID)
                .values(world_revision=PLAN.c.world_revision + 1)
            )
        yield connection, plan_of(row)


def touch_nodes(connection: sa.Connection, ids: list[str]) -> None:
    """Stamp these nodes with the world revision of the running `writing(world=True)`
    transaction (already bumped), so a reader finds them with `changed_nodes`."""
    current = sa.select(PLAN.c.world_revision).where(PLAN.c.id == PLAN_ROW_ID).scalar_subquery()
    for batch in batches(ids, IN_LIST_VALUES_MAX):
        connection.execute(sa.update(NODES).where(NODES.c.id.in_(batch)).values(revision=current))


def read_plan(connection: sa.Connection) -> ContactPlan:
    return plan_of(connection.execute(sa.select(PLAN).where(PLAN.c.id == PLAN_ROW_ID)).one())


def read_world_version(connection: sa.Connection) -> WorldVersion:
    """The plan's version and the count of node and station writes, from the plan's row
    (through the driver's cursor: read on every call of the node agents' RPCs)."""
    row = driver_row(
        connection,
        "SELECT version, world_revision FROM contact_plan WHERE id = ?",
        (PLAN_ROW_ID,),
    )
    assert row is not None, "the contact plan's row is made by the first migration"
    return WorldVersion(row["version"], row["world_revision"])


def plan_of(row: sa.Row[Any]) -> ContactPlan:
    return ContactPlan(
        version=row.version,
        horizon_start_ns=row.horizon_start_ns,
        horizon_end_ns=row.horizon_end_ns,
        refreshed_ns=row.refreshed_ns,
        longest_contact_ns=row.longest_contact_ns,
    )


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


# -- element sets ------------------------------------------------------------------------------


def mean_elements_json(element: ElementSet) -> str:
    values: dict[str, object] = {name: getattr(element, name) for name in _MEAN_FIELDS}
    values["epoch"] = element.epoch.isoformat()
    return json.dumps(values, sort_keys=True, allow_nan=False)


def element_set_of(row: sa.Row[Any]) -> ElementSet:
    """The ElementSet a node row stores, exactly as it was imported."""
    values = json.loads(row.mean_elements)
    epoch = datetime.fromisoformat(values.pop("epoch"))
    element = ElementSet(
        name=row.name, epoch=epoch, line1=row.tle_line1, line2=row.tle_line2, **values
    )
    # Read-back check: the row's own columns agree with the elements they index.
    assert element.norad_id == row.norad_id, f"node {row.id}: catalog number mismatch"
    return element


# -- rows to values ----------------------------------------------------------------------------


def node_values(element: ElementSet) -> dict[str, object]:
    """The element-set columns of a node row."""
    return {
        "id": str(element.norad_id),
        "norad_id": element.norad_id,
        "name": element.name,
        "tle_line1": element.line1,
        "tle_line2": element.line2,
        "mean_elements": mean_elements_json(element),
        "epoch_ns": to_ns(element.epoch),
    }


def capacity_of(row: sa.Row[Any]) -> Capacity:
    return Capacity(row.cpu_millicores, row.storage_mb, row.downlink_mbps, row.uplink_mbps)


def capacity_values(capacity: Capacity) -> dict[str, int]:
    return {
        "cpu_millicores": capacity.cpu_millicores,
        "storage_mb": capacity.storage_mb,
        "downlink_mbps": capacity.downlink_mbps,
        "uplink_mbps": capacity.uplink_mbps,
    }


# A node's agent, read beside the node (`select_nodes`), each column prefixed "agent_".
_AGENT_FIELDS = (
    "ground_link",
    "public_key",
    "key_id",
    "fuel_per_core_second",
    "runtime",
    "enrolled_ns",
    "key_entry_index",
    "api_key_id",
    "last_heartbeat_ns",
    "missed_contacts",
    "degraded_by_broker",
)


def select_nodes() -> sa.Select[Any]:
    """Nodes with their agents (none: the agent columns are NULL)."""
    return sa.select(
        NODES, *(NODE_AGENTS.c[name].label(f"agent_{name}") for name in _AGENT_FIELDS)
    ).select_from(NODES.outerjoin(NODE_AGENTS, NODE_AGENTS.c.node == NODES.c.id))


def agent_of(row: sa.Row[Any]) -> NodeAgentInfo | None:
    if getattr(row, "agent_public_key", None) is None:
        return None
    return NodeAgentInfo(
        ground_link=cast(GroundLink, row.agent_ground_link),
        public_key=bytes(row.agent_public_key),
        key_id=bytes(row.agent_key_id),
        fuel_per_core_second=int(row.agent_fuel_per_core_second),
        runtime=row.agent_runtime,
        enrolled_ns=int(row.agent_enrolled_ns),
        key_entry_index=int(row.agent_key_entry_index),
        api_key_id=row.agent_api_key_id,
        last_heartbeat_ns=row.agent_last_heartbeat_ns,
        missed_contacts=int(row.agent_missed_contacts),
        degraded_by_broker=bool(row.agent_degraded_by_broker),
    )


def node_of(row: sa.Row[Any]) -> NodeRecord:
    return NodeRecord(
        id=row.id,
        name=row.name,
        norad_id=row.norad_id,
        elements=element_set_of(row),
        capacity=capacity_of(row),
        labels=dict(row.labels),
        state=cast(NodeState, row.state),
        updated_ns=row.updated_ns,
        agent=agent_of(row),
    )


# The stations table's columns are GroundStation's fields, of the same names.
_STATION_FIELDS = tuple(f.name for f in dataclasses.fields(GroundStation))


def station_values(station: GroundStation) -> dict[str, object]:
    values = {name: getattr(station, name) for name in _STATION_FIELDS}
    values["labels"] = dict(station.labels)
    return values


def station_of(row: sa.Row[Any]) -> GroundStation:
    # GroundStation validates itself: a row that does not is a damaged database, and raises.
    values = {name: getattr(row, name) for name in _STATION_FIELDS}
    values["labels"] = dict(row.labels)
    return GroundStation(**values)


CONTACT_COLUMNS = (
    CONTACTS.c.id,
    CONTACTS.c.node,
    CONTACTS.c.station,
    CONTACTS.c.aos_ns,
    CONTACTS.c.los_ns,
    CONTACTS.c.max_elevation_deg,
)


def contact_of(row: Any) -> StoredContact:
    contact = StoredContact(
        row.id, row.node, row.station, row.aos_ns, row.los_ns, row.max_elevation_deg
    )
    assert contact.aos_ns < contact.los_ns, f"contact {contact.id} ends before it starts"
    return contact
