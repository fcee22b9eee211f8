"""The cost of one node state change reaching the broker's scheduler world, through the
database, at constellation scale.

A SQLite file (bench/results/, deleted after) holds N nodes (the first real Starlink
satellites and their trailing copies, imported as OMM through the constellation's import
rules) and 20 stations; a Scheduler's world is built from it by `WorldSync` (the broker's
path). Then, `changes` times: `Constellation.set_node_state` (SetNodeState's write, timed as
`write_ms`) and the next `WorldSync.sync` (timed as `sync_ms`: reading the world version, the
stations and the changed node, `Scheduler.set_node_state`). The state cycles ready → degraded
→ ready, so nothing is evacuated (the evacuation's cost is one read of that node's live work).

`full_read_ms` is what the sync read per change before nodes carried their revision: every
node and station (it is also what a rebuild reads). The world holds no contacts here: a state
change does not read them (bench/scheduler.py times `Scheduler.set_node_state` and a moved
contact on a world with a day of contacts and placements).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import scheduler_world as worlds
from orbitq.services.auth import Principal
from orbitq.services.constellation import Constellation, NodeImport, NodeState
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate
from orbitq.services.identity.api_keys import Role
from orbitq.services.orbits import load_bundled_stations
from orbitq.services.orbits.omm import omm_record
from orbitq.services.requests.store import RequestStore
from orbitq.services.requests.watch import TransitionHub
from orbitq.services.scheduler import Scheduler
from orbitq.services.scheduling.moves import Moves
from orbitq.services.scheduling.world_sync import WorldSync

OPERATOR = Principal(key_id="bench-operator", role=Role.OPERATOR)
IMPORT_CHUNK = 5_000
CHANGES_MAX = 1_000


def _now() -> datetime:
    return worlds.EPOCH


def state_change_cost(nodes: int, changes: int, directory: Path) -> dict[str, Any]:
    assert 1 <= changes <= CHANGES_MAX
    path = directory / f"state-change-{nodes}-{os.getpid()}.sqlite"
    path.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
        constellation = Constellation(engine, _now)
        elements = worlds.trailing_elements(nodes, base=6000)
        began = time.perf_counter()
        for first in range(0, len(elements), IMPORT_CHUNK):
            chunk = elements[first : first + IMPORT_CHUNK]
            text = json.dumps([omm_record(element) for element in chunk])
            constellation.import_nodes(OPERATOR, NodeImport(text=text, fmt="omm-json"))
        imported = time.perf_counter() - began
        for site in load_bundled_stations()[:20]:
            constellation.upsert_station(OPERATOR, site)
        scheduler = Scheduler()
        sync = WorldSync(scheduler, constellation, Moves(RequestStore(engine), TransitionHub()))
        now_s = worlds.START
        now_ns = now_s * 1_000_000_000
        began = time.perf_counter()
        sync.sync(now_s, now_ns, fresh=True)
        rebuild = time.perf_counter() - began
        assert len(scheduler.world.nodes) == nodes
        began = time.perf_counter()
        constellation.nodes()
        constellation.stations()
        full_read = time.perf_counter() - began
        ids = [info.node.id for info in scheduler.world.nodes]
        writes: list[float] = []
        syncs: list[float] = []
        for step in range(changes):
            node = ids[(step * 7919) % len(ids)]
            state: NodeState = "degraded" if step % 2 == 0 else "ready"
            if state == "ready":
                node = ids[((step - 1) * 7919) % len(ids)]
            began = time.perf_counter()
            constellation.set_node_state(OPERATOR, node, state)
            writes.append(time.perf_counter() - began)
            began = time.perf_counter()
            sync.sync(now_s, now_ns, fresh=False)
            syncs.append(time.perf_counter() - began)
            world = scheduler.world
            assert world.nodes[world.node_index[node]].node.state == state
        assert sync.rebuilds == 1, "a state change must not rebuild the world"
        return {
            "nodes": nodes,
            "changes": changes,
            "import_seconds": round(imported, 1),
            "rebuild_seconds": round(rebuild, 2),
            "full_read_ms": round(full_read * 1000, 1),
            "write_ms_median": round(statistics.median(writes) * 1000, 2),
            "sync_ms_median": round(statistics.median(syncs) * 1000, 2),
            "sync_ms_max": round(max(syncs) * 1000, 2),
            "rebuilds": sync.rebuilds,
            "updates": sync.updates,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        engine.dispose()
        path.unlink(missing_ok=True)
