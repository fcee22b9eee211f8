"""orbitq.services.constellation: the broker's nodes, ground stations and stored contact plan.

Owns: persistence and rules of the orbital world the scheduler places work into — importing
nodes from element sets, ground stations, node states, and the contact plan recomputed over a
rolling horizon (`Constellation.refresh_contacts`). The request service reads the world
in-process through `Constellation.nodes()`, `.stations()` and `.contacts_between()`.
Does not own: orbital computation (orbitq.services.orbits), gRPC (the servicer), or when
refreshes run (the broker's jobs).
"""

from __future__ import annotations

from orbitq.services.constellation.model import (
    CAPACITY_DEFAULT,
    ELEMENT_TEXT_BYTES_MAX,
    GROUND_LINKS,
    NO_CAPACITY,
    NODE_STATES,
    NODES_MAX,
    NODES_PER_IMPORT_MAX,
    STATIONS_MAX,
    Capacity,
    ContactPlan,
    GroundLink,
    ImportReport,
    NodeAgentInfo,
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
    check_horizon,
    contact_id,
)
from orbitq.services.constellation.service import Constellation

__all__ = [
    "CAPACITY_DEFAULT",
    "CONTACT_HORIZON_HOURS_DEFAULT",
    "CONTACT_RETENTION_DAYS_DEFAULT",
    "ELEMENT_TEXT_BYTES_MAX",
    "GROUND_LINKS",
    "NODES_MAX",
    "NODES_PER_IMPORT_MAX",
    "NODE_STATES",
    "NO_CAPACITY",
    "STATIONS_MAX",
    "Capacity",
    "Constellation",
    "ContactPlan",
    "ContactQuery",
    "GroundLink",
    "ImportReport",
    "NodeAgentInfo",
    "NodeImport",
    "NodeRecord",
    "NodeState",
    "RefreshReport",
    "StoredContact",
    "WorldVersion",
    "check_horizon",
    "contact_id",
]
