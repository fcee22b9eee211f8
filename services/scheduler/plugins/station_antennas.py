"""Reserve/Unreserve: station antennas and node radios for every link segment.

Owns: the rule that a station with k antennas talks to at most k satellites at once, counting
uplinks and downlink segments alike, and that a node's radio carries one link at a time (so a
node never downlinks faster than its rate by using two stations). Each segment takes one
antenna at its station and the node's radio for its seconds. Reserve checks every segment
before it commits any; Unreserve is idempotent (a booking it does not hold is ignored).

Also owns the reason the link searches give when contacts exist but their antennas (or the
node's radio) are taken: `REASON_BUSY`.

Does not own: finding free link time (links.py) or which stations are allowed.
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import (
    SUCCESS,
    Booking,
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
