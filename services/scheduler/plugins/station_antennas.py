"""Reserve/Unreserve: station antennas and node radios for every link segment.

Owns: the rule that a station with k antennas talks to at most k satellites at once, counting
uplinks and downlink segments alike, and that a node's radio carries one link at a time (so a
node never downlinks faster than its rate by using two stations). Each segment takes one
antenna at its station and the node's radio for its seconds. Reserve checks every segment
before it commits any; Unreserve is idempotent (a booking it does not hold is ignored).

Also owns the reason the link searches give when contacts exist but their antennas (or the
node's radio) are taken (`REASON_BUSY`), and a pre-filter that proves a request cannot be
placed on any node without walking them: if the allowed stations have no free antenna run
long enough for the shortest possible uplink before the latest start, or not enough free
antenna seconds for the shortest possible downlink before the deadline (at the best rates in
the world), no node can do better. It stops as soon as both are found, so it costs a couple of
timeline lookups unless the stations really are saturated — which is when it saves a walk over
every node.

Does not own: finding free link time (links.py) or which stations are allowed.
"""

from __future__ import annotations

from orbitq.services.scheduler.costs import downlink_seconds, uplink_seconds
from orbitq.services.scheduler.framework import (
    SUCCESS,
    Booking,
    RequestContext,
    Status,
    unschedulable,
)
from orbitq.services.scheduler.world import RADIO_CAPACITY, World

NAME = "station_antennas"
REASON_BUSY = "station antennas busy"
REASON_RADIO_BUSY = "node radio busy"


class StationAntennasPlugin:
    name = NAME

    def __init__(self) -> None:
        self._held: set[str] = set()

    def pre_filter(self, ctx: RequestContext) -> Status:
        request, world = ctx.request, ctx.world
        if world.uplink_mbps_max <= 0 or world.downlink_mbps_max <= 0:
            return SUCCESS  # the deadline pre-filter refuses these
        up = uplink_seconds(request.input_mb, world.uplink_mbps_max)
        down = downlink_seconds(request.output_mb, world.downlink_mbps_max)
        last_up = request.deadline - request.run_seconds - down - up  # latest uplink start
        first_down = ctx.earliest + up + request.run_seconds
        if last_up < ctx.earliest:
            return SUCCESS  # the deadline pre-filter refuses these
        uplink_found = False
        found = 0
        for station in world.stations:
            if not (ctx.allowed_stations >> station.index) & 1:
                continue
            limit = station.station.antennas - 1
            timeline = station.antennas
            if not uplink_found:
                uplink_found = timeline.earliest_fit(ctx.earliest, up, limit, last_up) is not None
            if found < down and first_down < request.deadline:
                runs = timeline.free_runs(first_down, request.deadline, limit, enough=down - found)
                found += sum(end - start for start, end in runs)
            if uplink_found and found >= down:
                return SUCCESS
        return unschedulable(NAME, REASON_BUSY)

    def reserve(self, world: World, booking: Booking) -> Status:
        assert booking.request.id not in self._held, "a booking is reserved once"
        node = world.nodes[booking.node]
        segments = booking.segments
        previous_end = -1
        for segment in segments:
            assert segment.start < segment.end
            assert segment.start >= previous_end, "a node's segments never overlap"
            previous_end = segment.end
            station = world.stations[segment.station]
            if station.antennas.max_over(segment.start, segment.end) >= station.station.antennas:
                return unschedulable(NAME, REASON_BUSY)
            if node.radio.max_over(segment.start, segment.end) >= RADIO_CAPACITY:
                return unschedulable(NAME, REASON_RADIO_BUSY)
        for segment in segments:
            world.stations[segment.station].antennas.add(segment.start, segment.end, 1)
            node.radio.add(segment.start, segment.end, 1)
        self._held.add(booking.request.id)
        return SUCCESS

    def unreserve(self, world: World, booking: Booking) -> None:
        if booking.request.id not in self._held:
            return
        self._held.discard(booking.request.id)
        node = world.nodes[booking.node]
        for segment in booking.segments:
            world.stations[segment.station].antennas.add(segment.start, segment.end, -1)
            node.radio.add(segment.start, segment.end, -1)

    def holds(self, request_id: str) -> bool:
        return request_id in self._held
