"""Fit: an uplink slot for the ticket (and input) before the run starts.

Owns: choosing the earliest contiguous slot of the request's uplink seconds (at the node's
uplink rate, at least 1 s) inside one contact of the node at an allowed station, with an idle
antenna and radio, no earlier than max(now, not_before), ending early enough that the run and
the downlink can still fit before the deadline. The run may not start before it ends.

Does not own: antenna bookkeeping (station_antennas.py) or the station selector.
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import (
    SUCCESS,
    Draft,
    RequestContext,
    Status,
    unresolvable,
    unschedulable,
)
from orbitq.services.scheduler.links import contact_seconds, find_uplink
from orbitq.services.scheduler.plugins import station_antennas, station_selector

NAME = "uplink"
REASON_NO_CONTACT = "no uplink contact before the latest start"
# The words of the station selector's and the antennas' reasons, reported under this plugin's
# name: the reasons say what is missing, the plugin which search found it missing. A summary
# counts a reason once however many plugins gave it (cycle.Unplaced.summary).
REASON_NO_ALLOWED_CONTACT: str = station_selector.REASON_NO_ALLOWED_CONTACT
REASON_ANTENNAS_BUSY: str = station_antennas.REASON_BUSY


class UplinkPlugin:
    name = NAME

    def fit(self, ctx: RequestContext, draft: Draft) -> Status:
        if draft.uplink is not None:
            return SUCCESS  # still valid: the start only ever moves later
        request, node = ctx.request, draft.node
        latest_end = request.deadline - request.run_seconds - draft.down_seconds
        segment = find_uplink(
            ctx.world,
            node,
            allowed=ctx.allowed_stations,
            earliest=ctx.earliest,
            latest_end=latest_end,
            seconds=draft.up_seconds,
        )
        if segment is None:
            return self._explain(ctx, draft, latest_end)
        draft.uplink = segment
        draft.start_min = max(draft.start_min, segment.end)
        return SUCCESS

    def _explain(self, ctx: RequestContext, draft: Draft, latest_end: int) -> Status:
        node, need = draft.node, draft.up_seconds
        known = ctx.world.contacts_until >= latest_end
        every = ctx.world.all_stations_mask
        if contact_seconds(node, every, ctx.earliest, latest_end, need) < need:
            return (unresolvable if known else unschedulable)(NAME, REASON_NO_CONTACT)
        allowed = ctx.allowed_stations
        if (
            allowed != every
            and contact_seconds(node, allowed, ctx.earliest, latest_end, need) < need
        ):
            return (unresolvable if known else unschedulable)(NAME, REASON_NO_ALLOWED_CONTACT)
        return unschedulable(NAME, REASON_ANTENNAS_BUSY)
