"""Filter: for a request with little slack, whether the node's contacts alone leave room for
it at all — an uplink inside one allowed contact, the run, then the downlink's contact time
before the deadline, with every antenna and the node's radio idle and the fastest radios
(`links.link_gap`). A relaxation of the uplink and downlink fits: a node it turns away would
fail them whatever the occupancy, for the reason given here under their names; it costs a few
contact lookups where a fit costs searches of the antenna and radio timelines.

Owns: when to check (slack, beyond uplink, run and downlink at the fastest radios, under
`IN_TIME_SLACK_SECONDS`, and the known contacts covering the deadline: then a refusal is
final) and the refusal's reason. With more slack nearly every node passes and the check is
skipped. Does not own: the allowed stations (station_selector.py) or occupancy (the fits).
"""

from __future__ import annotations

from orbitq.services.scheduler.costs import downlink_seconds, uplink_seconds
from orbitq.services.scheduler.framework import SUCCESS, RequestContext, Status, unresolvable
from orbitq.services.scheduler.links import (
    LINK_GAP_DOWNLINK,
    LINK_GAP_NONE,
    LINK_GAP_UPLINK,
    link_gap,
)
from orbitq.services.scheduler.plugins import downlink, uplink
from orbitq.services.scheduler.world import NodeInfo

NAME = "in_time"
IN_TIME_SLACK_SECONDS = 3_600

_REASONS = {  # (link lacking, lacking at every station too) -> refusal, as the fits say it
    (LINK_GAP_UPLINK, True): unresolvable(uplink.NAME, uplink.REASON_NO_CONTACT),
    (LINK_GAP_UPLINK, False): unresolvable(uplink.NAME, uplink.REASON_NO_ALLOWED_CONTACT),
    (LINK_GAP_DOWNLINK, True): unresolvable(downlink.NAME, downlink.REASON_NO_CONTACT),
    (LINK_GAP_DOWNLINK, False): unresolvable(downlink.NAME, downlink.REASON_NO_ALLOWED_CONTACT),
}


class InTimePlugin:
    name = NAME

    def __init__(self) -> None:
        # The request last seen, and its link seconds at the fastest radios if it is checked
        # (one walk filters many nodes for the same context).
        self._ctx: RequestContext | None = None
        self._seconds: tuple[int, int] | None = None

    def filter(self, ctx: RequestContext, node: NodeInfo) -> Status:
        if self._ctx is not ctx:
            self._ctx, self._seconds = ctx, self._check(ctx)
        seconds = self._seconds
        if seconds is None:
            return SUCCESS
        up, down = seconds
        gap = self._gap(ctx, node, ctx.allowed_stations, up, down)
        if gap == LINK_GAP_NONE:
            return SUCCESS
        every = ctx.world.all_stations_mask
        everywhere = ctx.allowed_stations == every or self._gap(ctx, node, every, up, down) == gap
        return _REASONS[(gap, everywhere)]

    @staticmethod
    def _gap(ctx: RequestContext, node: NodeInfo, allowed: int, up: int, down: int) -> int:
        request = ctx.request
        return link_gap(
            node,
            allowed,
            earliest=ctx.earliest,
            run=request.run_seconds,
            deadline=request.deadline,
            up=up,
            down=down,
        )

    @staticmethod
    def _check(ctx: RequestContext) -> tuple[int, int] | None:
        request, world = ctx.request, ctx.world
        if world.contacts_until < request.deadline or world.uplink_mbps_max <= 0:
            return None  # more contacts may come: a refusal could not be final
        if world.downlink_mbps_max <= 0:
            return None
        up = uplink_seconds(request.input_mb, world.uplink_mbps_max)
        down = downlink_seconds(request.output_mb, world.downlink_mbps_max)
        slack = request.deadline - ctx.earliest - up - request.run_seconds - down
        return None if slack >= IN_TIME_SLACK_SECONDS else (up, down)
