"""PreFilter: the deadline can still be met at all.

Owns: the test that makes a request expire instead of staying pending forever: if even the
fastest node, starting now with no waiting, cannot uplink, run and downlink before the
deadline (max(now, not_before) + uplink + run + downlink seconds at the best rates in the
world), the request is unresolvable.

Does not own: whether some node actually can (the fit plugins).
"""

from __future__ import annotations

from orbitq.services.scheduler.costs import downlink_seconds, uplink_seconds
from orbitq.services.scheduler.framework import (
    SUCCESS,
    RequestContext,
    Status,
    unresolvable,
)

NAME = "deadline"
REASON_UNMEETABLE = "deadline can no longer be met"


class DeadlinePlugin:
    name = NAME

    def pre_filter(self, ctx: RequestContext) -> Status:
        request, world = ctx.request, ctx.world
        if world.uplink_mbps_max <= 0 or world.downlink_mbps_max <= 0:
            return unresolvable(NAME, REASON_UNMEETABLE)
        shortest = (
            uplink_seconds(request.input_mb, world.uplink_mbps_max)
            + request.run_seconds
            + downlink_seconds(request.output_mb, world.downlink_mbps_max)
        )
        if ctx.earliest + shortest > request.deadline:
            return unresolvable(NAME, REASON_UNMEETABLE)
        return SUCCESS
