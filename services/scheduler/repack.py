"""Repacking: make room for a request that fits nowhere by moving placements made earlier in
the same cycle, when every one of them can be placed again.

Owns: finding which of this cycle's bookings stand in a request's way on a node (they hold
cpu, storage or the radio of that node inside the request's window, or an antenna at an
allowed station while the node is in contact with it), and the per-cycle index of link
segments that answers the second question. The runtime removes those bookings, fits the
request, and re-places them one by one in queue order; if any cannot be re-placed it restores
everything exactly. Nobody loses a placement, so the ordering policy (who gets first pick)
still holds; only where and when this cycle's placements go changes, before anyone has seen
them. Greedy placement alone takes the earliest slot even when a later one would have left
room for a request further down the queue; this recovers much of that.

Does not own: the bounds' enforcement loop, fitting, or committing (runtime.py).
"""

from __future__ import annotations

from bisect import bisect_left

from orbitq.services.scheduler.framework import Booking, RequestContext
from orbitq.services.scheduler.links import CONTACTS_SCANNED_MAX
from orbitq.services.scheduler.world import NodeInfo

REPACK_ATTEMPTS_PER_CYCLE_MAX = 32  # requests that may try repacking per cycle
REPACK_NODES_MAX = 8  # nodes tried per request
REPACK_VICTIMS_MAX = 8  # bookings moved to make room on one node


class CycleIndex:
    """This cycle's bookings, and their link segments per station (sorted lazily)."""

    def __init__(self, stations: int) -> None:
        self.bookings: dict[str, Booking] = {}
        self._serials: dict[str, int] = {}
        self._next_serial = 0
        self._segments: list[list[tuple[int, int, str, int]]] = [[] for _ in range(stations)]
        self._dirty = [False] * stations
        self._longest = 0

    def add(self, booking: Booking) -> None:
        request_id = booking.request.id
        self.bookings[request_id] = booking
        self._next_serial += 1
        serial = self._serials[request_id] = self._next_serial
        for segment in booking.segments:
            self._segments[segment.station].append((segment.start, segment.end, request_id, serial))
            self._dirty[segment.station] = True
            self._longest = max(self._longest, segment.end - segment.start)

    def remove(self, request_id: str) -> None:
        self.bookings.pop(request_id, None)  # its segments go stale and are skipped
        self._serials.pop(request_id, None)

    def holders(self, station: int, start: int, end: int) -> set[str]:
        """Requests of this cycle with a link segment at `station` overlapping [start, end)."""
        segments = self._segments[station]
        if self._dirty[station]:
            segments.sort()
            self._dirty[station] = False
        out: set[str] = set()
        index = bisect_left(segments, (start - self._longest,))
        while index < len(segments) and segments[index][0] < end:
            _, seg_end, request_id, serial = segments[index]
            if seg_end > start and self._serials.get(request_id) == serial:
                out.add(request_id)
            index += 1
        return out


def in_the_way(
    ctx: RequestContext, node: NodeInfo, index: CycleIndex, on_node: dict[str, Booking]
) -> list[Booking] | None:
    """This cycle's bookings that could stand in the request's way on `node`; None when more
    than REPACK_VICTIMS_MAX."""
    request = ctx.request
    window_start, window_end = ctx.earliest, request.deadline
    found: set[str] = set()
    for request_id, booking in on_node.items():
        if (
            request_id in index.bookings
            and booking.finish > window_start
            and booking.uplink.start < window_end
        ):
            found.add(request_id)
    starts, ends = node.contact_starts, node.contact_ends
    stations = node.contact_stations
    position = node.first_contact_ending_after(window_start)
    stop = min(len(starts), position + CONTACTS_SCANNED_MAX)
    while position < stop and starts[position] < window_end:
        station = stations[position]
        if (ctx.allowed_stations >> station) & 1:
            start = max(starts[position], window_start)
            end = min(ends[position], window_end)
            if start < end:
                found |= index.holders(station, start, end)
        if len(found) > REPACK_VICTIMS_MAX:
            return None
        position += 1
    if len(found) > REPACK_VICTIMS_MAX:
        return None
    return [index.bookings[request_id] for request_id in sorted(found)]
