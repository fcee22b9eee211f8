"""PreFilter + Filter: the stations a request may use (allowed ids and countries).

Owns: turning the request's station selector into a bitmask of station indices in the context
(every link search skips other stations: data sovereignty applies to input and output alike),
narrowing the candidate nodes to those that see an allowed station at all (so a request for
two Antarctic stations does not walk every satellite), and turning away nodes that never see
an allowed station. A node without such contacts is
unresolvable only when the known contacts already reach past the deadline (more contacts may
still be computed on a rolling horizon).

Does not own: contact timing (uplink, downlink) or antennas.
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import (
    SUCCESS,
    RequestContext,
    Status,
    unresolvable,
    unschedulable,
)
from orbitq.services.scheduler.world import NodeInfo

NAME = "station_selector"
NARROWING_CONTACTS_PER_NODE_MAX = 2  # scan at most this many contacts per node to narrow
REASON_NO_STATION = "no station matches the station selector"
REASON_NO_ALLOWED_CONTACT = "no contact with an allowed station"

_NEVER = unresolvable(NAME, REASON_NO_ALLOWED_CONTACT)
_NOT_YET = unschedulable(NAME, REASON_NO_ALLOWED_CONTACT)


class StationSelectorPlugin:
    name = NAME

    def pre_filter(self, ctx: RequestContext) -> Status:
        request, world = ctx.request, ctx.world
        if not request.station_ids and not request.station_countries:
            ctx.allowed_stations = world.all_stations_mask
            return SUCCESS
        mask = world.stations_mask(request.station_ids, request.station_countries)
        if mask == 0:
            return unresolvable(NAME, REASON_NO_STATION)
        ctx.allowed_stations = mask
        if world.contacts_until < request.deadline:
            return SUCCESS  # narrow only when the known contacts already cover the window
        # Nodes with an allowed contact while the uplink can happen; failing that (too many
        # contacts to scan: nearly every node has one), nodes that ever see an allowed station.
        last_uplink_end = request.deadline - request.run_seconds
        budget = NARROWING_CONTACTS_PER_NODE_MAX * len(world.nodes)
        seeing = world.nodes_in_contact(mask, ctx.earliest, last_uplink_end, budget)
        if seeing is None:
            seeing = world.nodes_seeing(mask)
        if len(seeing) == len(world.nodes):
            return SUCCESS
        if ctx.candidates is None:
            ctx.candidates = seeing
            ctx.narrowed_by, ctx.narrowed_reason = NAME, REASON_NO_ALLOWED_CONTACT
        elif len(seeing) < len(world.nodes):
            wanted = set(seeing)
            ctx.candidates = [index for index in ctx.candidates if index in wanted]
        if not ctx.candidates:
            return unresolvable(NAME, REASON_NO_ALLOWED_CONTACT)
        return SUCCESS

    def filter(self, ctx: RequestContext, node: NodeInfo) -> Status:
        if node.station_mask & ctx.allowed_stations:
            return SUCCESS
        return _NEVER if ctx.world.contacts_until >= ctx.request.deadline else _NOT_YET
