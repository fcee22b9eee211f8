"""PreFilter + Filter: the stations a request may use (allowed ids and countries), and whether
a node's contacts with them leave room for the request at all.

Owns: turning the request's station selector into a bitmask of station indices in the context
(every link search skips other stations: data sovereignty applies to input and output alike),
narrowing the candidate nodes to those that see an allowed station while the uplink can happen
and while the downlink can (so a request for two Antarctic stations does not walk every
satellite), of those, when few are left, to the nodes whose contacts alone (every antenna and
the radio idle, the fastest radios) leave room for uplink, run and downlink
(`links.link_gap`: a relaxation of the fits, so it drops only nodes the fits would turn
away), and turning away nodes that never see an allowed station. A node without such
contacts is unresolvable only when the known contacts already reach past the deadline (more
contacts may still be computed on a rolling horizon).

Does not own: contact timing with occupancy (uplink, downlink) or antennas.
"""

from __future__ import annotations

from orbitq.services.scheduler.costs import downlink_seconds, uplink_seconds
from orbitq.services.scheduler.framework import (
    SUCCESS,
    RequestContext,
    Status,
    unresolvable,
    unschedulable,
)
from orbitq.services.scheduler.links import link_gap
from orbitq.services.scheduler.world import NodeInfo

NAME = "station_selector"
NARROWING_CONTACTS_PER_NODE_MAX = 2  # scan at most this many contacts per node to narrow
NARROWED_SHARE_MAX = 4  # narrow by the downlink window too once the uplink's left 1/4 of nodes
IN_TIME_CHECKS_MAX = 512  # nodes whose own contacts the pre-filter checks, per request
REASON_NO_STATION = "no station matches the station selector"
REASON_NO_ALLOWED_CONTACT = "no contact with an allowed station"

_NEVER = unresolvable(NAME, REASON_NO_ALLOWED_CONTACT)
_NOT_YET = unschedulable(NAME, REASON_NO_ALLOWED_CONTACT)


class StationSelectorPlugin:
    name = NAME

    def pre_filter(self, ctx: RequestContext) -> Status:
        request, world = ctx.request, ctx.world
        restricted = bool(request.station_ids or request.station_countries)
        mask = world.all_stations_mask
        if restricted:
            mask = world.stations_mask(request.station_ids, request.station_countries)
            if mask == 0:
                return unresolvable(NAME, REASON_NO_STATION)
        ctx.allowed_stations = mask
        if world.contacts_until < request.deadline:
            return SUCCESS  # narrow only when the known contacts already cover the window
        up = uplink_seconds(request.input_mb, world.uplink_mbps_max)
        down = downlink_seconds(request.output_mb, world.downlink_mbps_max)
        run = request.run_seconds
        if not restricted:
            return SUCCESS
        # Nodes with an allowed contact while the uplink can happen and, for a narrow window,
        # one while the downlink can; failing that (too many contacts to scan: nearly every
        # node has one), nodes that ever see an allowed station.
        budget = NARROWING_CONTACTS_PER_NODE_MAX * len(world.nodes)
        seeing = world.nodes_in_contact(mask, ctx.earliest, request.deadline - run - down, budget)
        if seeing is None:
            seeing = world.nodes_seeing(mask)
        elif down > 0 and (
            len(seeing) <= IN_TIME_CHECKS_MAX
            or len(seeing) * NARROWED_SHARE_MAX <= len(world.nodes)
        ):
            later = world.nodes_in_contact(mask, ctx.earliest + up + run, request.deadline, budget)
            if later is not None:
                wanted = set(later)
                seeing = [index for index in seeing if index in wanted]
            if len(seeing) <= IN_TIME_CHECKS_MAX:  # few left: check each one's contacts now
                seeing = [
                    index
                    for index in seeing
                    if not link_gap(
                        world.nodes[index],
                        mask,
                        earliest=ctx.earliest,
                        run=run,
                        deadline=request.deadline,
                        up=up,
                        down=down,
                    )
                ]
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
