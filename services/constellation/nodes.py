"""Nodes: importing element sets with capacities and labels, listing, and node states.

Owns the import rules (docs/orbits.md, "Serving the sky"):
1. the text is at most ELEMENT_TEXT_BYTES_MAX and holds at most NODES_PER_IMPORT_MAX sets;
2. any bad record imports nothing (INVALID_ARGUMENT listing each with its line or record),
   unless `skip_bad`, which imports the good ones and returns the problems;
3. a bad capacities row is always an error (a node must never get the wrong capacity);
4. nodes are upserted by NORAD id in one transaction: a new node gets the capacities row that
   names it, else the given default fields, else CAPACITY_DEFAULT, the given labels and state
   `ready`; an existing node gets the new element set and name, keeps its state, takes only
   the capacity fields given, and the given labels are merged over its own;
5. element sets more than ELEMENT_AGE_WARN_DAYS from the broker's clock are reported as stale.
Does not own: parsing element sets (orbitq.services.orbits) or contacts (see `plan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from orbitq.services import pagination
from orbitq.services.constellation.model import (
    CAPACITIES_TEXT_BYTES_MAX,
    CAPACITY_DEFAULT,
    ELEMENT_TEXT_BYTES_MAX,
    NODES_MAX,
    NODES_PER_IMPORT_MAX,
    PROBLEMS_REPORTED_MAX,
    Capacity,
    ImportReport,
    NodeImport,
    NodeRecord,
    NodeState,
    problems_message,
)
from orbitq.services.constellation.tables import (
    BATCH_ROWS,
    NODES,
    batches,
    capacity_of,
    capacity_values,
    node_of,
    node_values,
    select_nodes,
    touch_nodes,
    writing,
)
from orbitq.services.db.engine import IN_LIST_VALUES_MAX
from orbitq.services.db.models import NODE_ID_CHARS_MAX
from orbitq.services.errors import (
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from orbitq.services.orbits import (
    ELEMENT_AGE_WARN_DAYS,
    ELEMENT_FORMATS,
    ElementSet,
    ImportProblem,
    label_problems,
    parse_elements,
    stale_elements,
)
from orbitq.services.orbits.elements import NORAD_ID_MAX
from orbitq.services.orbits.stations import LABELS_MAX
from orbitq.services.orbits.tabular import read_csv_records

CAPACITY_COLUMNS = ("norad_id", "cpu_millicores", "storage_mb", "downlink_mbps", "uplink_mbps")
_DIGITS_MAX = 10


def check_labels(labels: Mapping[str, str], field: str) -> None:
    found = label_problems(labels)
    if found:
        raise InvalidArgumentError(f"{field}: {'; '.join(found)}")


def _whole(text: str, column: str) -> int:
    cleaned = text.strip()
    if not (cleaned.isascii() and cleaned.isdigit() and len(cleaned) <= _DIGITS_MAX):
        raise ValueError(f"{column} {text.strip()[:20]!r} is not a whole number")
    return int(cleaned)


def parse_capacities(text: str) -> tuple[dict[int, Capacity], list[ImportProblem]]:
    """Per-node capacities from CSV with a header naming CAPACITY_COLUMNS (any order)."""
    found: dict[int, Capacity] = {}
    first_at: dict[int, int] = {}
    problems: list[ImportProblem] = []
    if not text.strip():
        return found, problems

    def problem(line: int, message: str) -> None:
        problems.append(ImportProblem(line, f"capacities: {message}"))

    def check_header(header: list[str]) -> str | None:
        if sorted(header) != sorted(CAPACITY_COLUMNS):
            return f"the header must name {','.join(CAPACITY_COLUMNS)}"
        return None

    def add(record: dict[str, str], line: int) -> bool:
        try:
            values = {name: _whole(cell, name) for name, cell in record.items()}
        except ValueError as error:
            problem(line, str(error))
            return True
        norad = values.pop("norad_id")
        capacity = Capacity(**values)
        wrong = capacity.problems(given_only=False)
        if not 0 < norad <= NORAD_ID_MAX:
            wrong.insert(0, f"norad_id {norad} is outside 1..{NORAD_ID_MAX}")
        elif norad in first_at:
            wrong.append(f"norad_id {norad} already appeared at line {first_at[norad]}")
        if wrong:
            problem(line, "; ".join(wrong))
            return True
        first_at[norad] = line
        found[norad] = capacity
        return True

    read_csv_records(
        text.removeprefix("\ufeff"),
        normalise=str.lower,
        check_header=check_header,
        on_record=add,
        on_problem=problem,
        no_header=f"no header row ({','.join(CAPACITY_COLUMNS)})",
    )
    return found, problems


def _check_request(spec: NodeImport) -> None:
    if spec.fmt not in ELEMENT_FORMATS:
        raise InvalidArgumentError(
            f"format {spec.fmt!r} is not one of {', '.join(ELEMENT_FORMATS)}"
        )
    size = len(spec.text.encode("utf-8"))
    if size > ELEMENT_TEXT_BYTES_MAX:
        raise InvalidArgumentError(
            f"the element-set text is {size:,} bytes; at most {ELEMENT_TEXT_BYTES_MAX:,} per "
            "import: split the file"
        )
    if len(spec.capacities_csv.encode("utf-8")) > CAPACITIES_TEXT_BYTES_MAX:
        raise InvalidArgumentError(
            f"the capacities CSV is larger than {CAPACITIES_TEXT_BYTES_MAX:,} bytes"
        )
    check_labels(spec.labels, "labels")
    wrong = spec.default_capacity.problems(given_only=True)
    if wrong:
        raise InvalidArgumentError(f"default capacity: {'; '.join(wrong)}")


def _parse(spec: NodeImport) -> tuple[list[ElementSet], list[ImportProblem], dict[int, Capacity]]:
    capacities, capacity_problems = parse_capacities(spec.capacities_csv)
    if capacity_problems:
        head = (
            f"the capacities CSV has {len(capacity_problems)} problem(s); nothing was imported"
            " (a bad capacities row is an error even with skip_bad):"
        )
        raise InvalidArgumentError(problems_message(head, capacity_problems))
    parsed = parse_elements(spec.text, spec.fmt)
    elements, problems = parsed.elements, parsed.problems
    if len(elements) > NODES_PER_IMPORT_MAX:
        raise InvalidArgumentError(
            f"the text holds {len(elements):,} element sets; at most {NODES_PER_IMPORT_MAX:,} "
            "per import: split the file"
        )
    if problems and not spec.skip_bad:
        head = (
            f"{len(problems)} bad record(s); nothing was imported (fix them, or pass skip_bad"
            f" to import the {len(elements)} good element set(s)):"
        )
        raise InvalidArgumentError(problems_message(head, problems))
    if not elements and not problems:
        raise InvalidArgumentError(
            "no element sets in the text: expected TLE (2- or 3-line) or OMM (CSV or JSON)"
        )
    return elements, problems, capacities


def _warnings(
    elements: list[ElementSet],
    stale: list[ElementSet],
    problems: list[ImportProblem],
    capacities: dict[int, Capacity],
    now: datetime,
) -> list[str]:
    warnings: list[str] = []
    if stale:
        worst = max(stale, key=lambda element: abs(element.age_days(now)))
        warnings.append(
            f"{len(stale)} element set(s) have epochs more than {ELEMENT_AGE_WARN_DAYS:g} days"
            f" from the broker's clock (worst: {worst.name}, {worst.age_days(now):+.1f} days);"
            " SGP4 error grows by km per day, so contact times will be off: import fresh"
            " element sets"
        )
    if len(problems) > PROBLEMS_REPORTED_MAX:
        warnings.append(f"{len(problems) - PROBLEMS_REPORTED_MAX} more problem(s) not listed")
    unused = sorted(set(capacities) - {element.norad_id for element in elements})
    if unused:
        warnings.append(
            f"the capacities CSV names {len(unused)} catalog number(s) not in this import"
            f" (e.g. {unused[0]}); those rows were not used"
        )
    return warnings


def import_nodes(engine: sa.Engine, spec: NodeImport, now: datetime, now_ns: int) -> ImportReport:
    """Upsert the nodes `spec` names (rules 1-5 above)."""
    _check_request(spec)
    elements, problems, capacities = _parse(spec)
    created = updated = 0
    if elements:
        created, updated = _upsert(engine, elements, spec, capacities, now_ns)
    stale = stale_elements(elements, now)
    return ImportReport(
        created=created,
        updated=updated,
        problems=tuple(problems[:PROBLEMS_REPORTED_MAX]),
        stale=tuple(str(element.norad_id) for element in stale),
        warnings=tuple(_warnings(elements, stale, problems, capacities, now)),
    )


def _upsert(
    engine: sa.Engine,
    elements: list[ElementSet],
    spec: NodeImport,
    capacities: dict[int, Capacity],
    now_ns: int,
) -> tuple[int, int]:
    ids = [str(element.norad_id) for element in elements]
    with writing(engine, world=True) as (connection, _):
        existing: dict[str, sa.Row[Any]] = {}
        for batch in batches(ids, IN_LIST_VALUES_MAX):
            query = sa.select(NODES).where(NODES.c.id.in_(batch))
            existing.update((row.id, row) for row in connection.execute(query))
        created = len(ids) - len(existing)
        if created:
            count = connection.execute(sa.select(sa.func.count()).select_from(NODES)).scalar_one()
            if count + created > NODES_MAX:
                raise ResourceExhaustedError(
                    f"the broker holds {count:,} nodes; {created:,} more would exceed {NODES_MAX:,}"
                )
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for element in elements:
            values = node_values(element)
            given = capacities.get(element.norad_id, spec.default_capacity)
            row = existing.get(str(values["id"]))
            if row is None:
                values.update(capacity_values(given.over(CAPACITY_DEFAULT)))
                values.update(
                    labels=dict(spec.labels),
                    state="ready",
                    created_ns=now_ns,
                    updated_ns=now_ns,
                )
                inserts.append(values)
                continue
            labels = {**row.labels, **spec.labels}
            if len(labels) > LABELS_MAX:
                raise InvalidArgumentError(
                    f"node {row.id} would carry {len(labels)} labels; at most {LABELS_MAX}"
                )
            values.update(capacity_values(given.over(capacity_of(row))))
            values.update(labels=labels, updated_ns=now_ns, key=values.pop("id"))
            updates.append(values)
        for batch in batches(inserts, BATCH_ROWS):
            connection.execute(sa.insert(NODES), batch)
        update = sa.update(NODES).where(NODES.c.id == sa.bindparam("key"))
        for batch in batches(updates, BATCH_ROWS):
            connection.execute(update, batch)
        touch_nodes(connection, ids)
    return len(inserts), len(updates)


# -- reading -----------------------------------------------------------------------------------


def check_node_id(node_id: str) -> str:
    if not node_id:
        raise InvalidArgumentError("the node id is required (its NORAD catalog number)")
    if len(node_id) > NODE_ID_CHARS_MAX:
        raise InvalidArgumentError(
            f"node id {node_id[:40]!r} is longer than {NODE_ID_CHARS_MAX} characters"
        )
    return node_id


def get_node(connection: sa.Connection, node_id: str) -> NodeRecord:
    row = connection.execute(select_nodes().where(NODES.c.id == check_node_id(node_id))).first()
    if row is None:
        raise NotFoundError(f"no node {node_id!r}: import its element set first")
    return node_of(row)


def _node_filter(labels: Mapping[str, str], state: NodeState | None) -> list[Any]:
    conditions: list[Any] = []
    for key, value in sorted(labels.items()):
        conditions.append(NODES.c.labels[key].as_string() == value)
    if state is not None:
        conditions.append(NODES.c.state == state)
    return conditions


def list_nodes(
    connection: sa.Connection,
    labels: Mapping[str, str],
    state: NodeState | None,
    page_size: int,
    page_token: str,
) -> tuple[list[NodeRecord], str]:
    """Nodes carrying every label of `labels` (and in `state`), by NORAD id."""
    check_labels(labels, "label filter")
    size = pagination.page_size(page_size)
    query_key = {"labels": dict(labels), "state": state}
    after = pagination.decode_token(page_token, query_key, pagination.INT)
    query = (
        select_nodes()
        .where(*_node_filter(labels, state))
        .order_by(NODES.c.norad_id)
        .limit(size + 1)
    )
    if after is not None:
        if not isinstance(after, int):
            raise InvalidArgumentError("malformed page_token: pass back next_page_token as given")
        query = query.where(NODES.c.norad_id > after)
    rows = list(connection.execute(query))
    next_token = ""
    if len(rows) > size:
        rows = rows[:size]
        next_token = pagination.encode_token(rows[-1].norad_id, query_key)
    return [node_of(row) for row in rows], next_token


def all_nodes(
    connection: sa.Connection, labels: Mapping[str, str], state: NodeState | None
) -> list[NodeRecord]:
    query = select_nodes().where(*_node_filter(labels, state)).order_by(NODES.c.norad_id)
    return [node_of(row) for row in connection.execute(query)]


def changed_nodes(connection: sa.Connection, since: int) -> list[NodeRecord]:
    """The nodes written after world revision `since` (by NORAD id): what a reader whose copy
    is at `since` must look at again (the index on `revision` keeps this O(changed))."""
    query = select_nodes().where(NODES.c.revision > since).order_by(NODES.c.norad_id)
    return [node_of(row) for row in connection.execute(query)]


def set_node_state(engine: sa.Engine, node_id: str, state: NodeState, now_ns: int) -> NodeRecord:
    check_node_id(node_id)
    with writing(engine, world=True) as (connection, _):
        result = connection.execute(
            sa.update(NODES).where(NODES.c.id == node_id).values(state=state, updated_ns=now_ns)
        )
        if result.rowcount == 0:
            raise NotFoundError(f"no node {node_id!r}: import its element set first")
        touch_nodes(connection, [node_id])
        return get_node(connection, node_id)
