"""orbitq.services.scheduler: placing service requests onto orbital nodes.

Owns: the plugin framework (filter, fit, score, reserve/unreserve), the registry, the runtime
that runs one cycle, node timelines and contact/antenna bookkeeping, token costs of a request
and the schedule document. Pure: it works on in-memory models handed to it, never touches the
database, the ledger or the clock (callers pass `now`).

    scheduler = Scheduler()
    scheduler.set_world(nodes, stations, contacts)
    for request, placement in stored: scheduler.place_existing(request, placement)
    result = scheduler.run_cycle(pending, now, tenant_usage)
"""

# ruff: noqa: E402 (the compiled-build check runs before the imports it guards)

from orbitq.services.scheduler.native import check as _check_compiled_build

# Before any compiled module is imported: a build older than its source would run old code.
_check_compiled_build()

from orbitq.services.scheduler.costs import (
    Cost,
    Quote,
    downlink_seconds,
    placement_cost,
    quote,
    uplink_seconds,
)
from orbitq.services.scheduler.cycle import CycleResult, Rejection, Unplaced
from orbitq.services.scheduler.document import rfc3339, schedule_document
from orbitq.services.scheduler.framework import Code, Profile, Status
from orbitq.services.scheduler.model import (
    NODE_STATES,
    PRIORITY_MAX,
    Contact,
    DownlinkSegment,
    Node,
    NodeState,
    Placement,
    Request,
    Station,
    Uplink,
)
from orbitq.services.scheduler.preemption import DISPLACEMENTS_PER_CYCLE_MAX
from orbitq.services.scheduler.registry import default_profile
from orbitq.services.scheduler.runtime import (
    UPLINK_NOTICE_MARGIN_SECONDS,
    Scheduler,
    SchedulerConfig,
)

__all__ = [
    "DISPLACEMENTS_PER_CYCLE_MAX",
    "NODE_STATES",
    "PRIORITY_MAX",
    "UPLINK_NOTICE_MARGIN_SECONDS",
    "Code",
    "Contact",
    "Cost",
    "CycleResult",
    "DownlinkSegment",
    "Node",
    "NodeState",
    "Placement",
    "Profile",
    "Quote",
    "Rejection",
    "Request",
    "Scheduler",
    "SchedulerConfig",
    "Station",
    "Status",
    "Unplaced",
    "Uplink",
    "default_profile",
    "downlink_seconds",
    "placement_cost",
    "quote",
    "rfc3339",
    "schedule_document",
    "uplink_seconds",
]
