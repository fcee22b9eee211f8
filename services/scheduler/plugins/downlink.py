"""Fit: downlink segments after the run carrying the output before the deadline.

Owns: planning the request's downlink seconds (output at the node's downlink rate) as the
earliest-finishing set of segments inside contacts of the node at allowed stations, after the
run ends and before the deadline, with an idle antenna and radio; at most
DOWNLINK_SEGMENTS_MAX segments, none shorter than DOWNLINK_SEGMENT_SECONDS_MIN except the one
that finishes. Sets the draft's finish (storage is held until then). No output, no segments.

A failure is unresolvable only when contacts are known past the deadline and even the
earliest conceivable end of the run leaves too little contact time.

Does not own: antenna bookkeeping, the station selector, storage.
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
from orbitq.services.scheduler.links import contact_seconds, plan_downlink
from orbitq.services.scheduler.model import DOWNLINK_SEGMENTS_MAX
from orbitq.services.scheduler.plugins import station_antennas, station_selector

NAME = "downlink"
REASON_NO_CONTACT = "no downlink contact before deadline"
REASON_FRAGMENTED = f"downlink would need more than {DOWNLINK_SEGMENTS_MAX} segments"
# The words of the station selector's and the antennas' reasons, reported under this plugin's
# name (see uplink.py).
REASON_NO_ALLOWED_CONTACT: str = station_selector.REASON_NO_ALLOWED_CONTACT
REASON_ANTENNAS_BUSY: str = station_antennas.REASON_BUSY


class DownlinkPlugin:
    name = NAME

    def fit(self, ctx: RequestContext, draft: Draft) -> Status:
        need = draft.down_seconds
        if need == 0:
            draft.downlink = []
            draft.finish = draft.end
            return SUCCESS
        plan, fragmented = plan_downlink(
            ctx.world,
            draft.node,
            allowed=ctx.allowed_stations,
            after=draft.end,
            deadline=ctx.request.deadline,
            seconds=need,
        )
        if plan is None:
            return self._explain(ctx, draft, fragmented)
        draft.downlink = plan
        draft.finish = plan[-1].end
        return SUCCESS

    def _explain(self, ctx: RequestContext, draft: Draft, fragmented: bool) -> Status:
        node, need, world = draft.node, draft.down_seconds, ctx.world
        deadline = ctx.request.deadline
        soonest_end = ctx.earliest + draft.up_seconds + draft.run_seconds
        for mask, reason in (
            (world.all_stations_mask, REASON_NO_CONTACT),
            (ctx.allowed_stations, REASON_NO_ALLOWED_CONTACT),
        ):
            if contact_seconds(node, mask, draft.end, deadline, need) < need:
                never = (
                    world.contacts_until >= deadline
                    and contact_seconds(node, mask, soonest_end, deadline, need) < need
                )
                return (unresolvable if never else unschedulable)(NAME, reason)
        if fragmented:
            return unschedulable(NAME, REASON_FRAGMENTED)
        return unschedulable(NAME, REASON_ANTENNAS_BUSY)
