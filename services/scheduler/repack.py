"""Repacking: make room for a request that fits nowhere by moving placements that nobody has
acted on yet, when every one of them can be placed again.

Owns: finding which movable bookings stand in a request's way on a node (they hold cpu,
storage or the radio of that node inside the request's window, or an antenna at an allowed
station while the node is in contact with it), and the index of every booking's link segments
per station that answers the second question (`LinkIndex`, kept across cycles). Which bookings
are movable is the caller's rule (runtime.py, cycle.py): this cycle's placements, and earlier
ones whose ticket cannot have been pulled yet (docs/scheduler.md, "The online policy"). The
runtime removes those bookings, fits the request, and re-places them one by one in queue
order; if any cannot be re-placed it restores everything exactly. Nobody loses a placement, so
the ordering policy (who gets first pick) still holds; only where and when placements go
changes. Greedy placement takes the earliest slot even when a later one would have left room
for a request further down the queue — or for one that has not arrived yet; this recovers
much of that.

Does not own: the movability rule, the bounds' enforcement loop, fitting, or committing
(runtime.py).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable

from orbitq.services.scheduler.framework import Booking, RequestContext
from orbitq.services.scheduler.links import CONTACTS_SCANNED_MAX
from orbitq.services.scheduler.world import NodeInfo

REPACK_ATTEMPTS_PER_CYCLE_MAX = 32  # requests that may try repacking per cycle
REPACK_NODES_MAX = 8  # nodes tried per request
REPACK_VICTIMS_MAX = 8  # bookings moved to make room on one node


class LinkIndex:
    """Every booking, and its link segments per station sorted by start.

    Removal is lazy (a removed booking's segments go stale and are skipped); `compact` drops
    stale segments, and `add` compacts once they outnumber the live ones, so the index stays
    within twice the live segments."""

    def __init__(self, stations: int) -> None:
        self.bookings: dict[str, Booking] = {}
        self._serials: dict[str, int] = {}
        self._next_serial = 0
        self._segments: list[list[tuple[int, int, str, int]]] = [[] for _ in range(stations)]
        self._live = 0
        self._stale = 0
        self._longest = 0

    def add(self, booking: Booking) -> None:
        request_id = booking.request.id
        self.remove(request_id)
        self.bookings[request_id] = booking
        self._next_serial += 1
        serial = self._serials[request_id] = self._next_serial
        for segment in booking.segments:
            # insort: the list stays sorted without a re-sort per query (it holds every
            # booking's segments, not only this cycle's).
            insort(
                self._segments[segment.station], (segment.start, segment.end, request_id, serial)
            )
            self._longest = max(self._longest, segment.end - segment.start)
        self._live += len(booking.segments)
        if self._stale > max(self._live, 1024):
            self.compact()

    def remove(self, request_id: str) -> None:
        booking = self.bookings.pop(request_id, None)
        if booking is not None:
            self._serials.pop(request_id, None)
            self._live -= len(booking.segments)
            self._stale += len(booking.segments)

    def compact(self) -> None:
        """Drop stale segments."""
        for station, segments in enumerate(self._segments):
            self._segments[station] = [s for s in segments if self._serials.get(s[2]) == s[3]]
        self._stale = 0

    def holders(
        self,
        station: int,
        start: int,
        end: int,
        accept: Callable[[Booking], bool],
        found: set[str],
        limit: int,
    ) -> bool:
        """Add to `found` the bookings `accept`ed with a link segment at `station` overlapping
        [start, end); False, stopping at once, when `found` grows beyond `limit` (a busy
        station holds many bookings: the scan stops as soon as the answer is known)."""
        segments = self._segments[station]
        bookings = self.bookings
        index = bisect_left(segments, (start - self._longest,))
        while index < len(segments) and segments[index][0] < end:
            _, seg_end, request_id, serial = segments[index]
            index += 1
            if seg_end <= start or request_id in found or self._serials.get(request_id) != serial:
                continue
            if accept(bookings[request_id]):
                found.add(request_id)
                if len(found) > limit:
                    return False
        return True


def in_the_way(
    ctx: RequestContext,
    node: NodeInfo,
    index: LinkIndex,
    on_node: dict[str, Booking],
    movable: Callable[[Booking], bool],
) -> list[Booking] | None:
    """The movable bookings that could stand in the request's way on `node`; None when more
    than REPACK_VICTIMS_MAX."""
    request = ctx.request
    window_start, window_end = ctx.earliest, request.deadline
    found: set[str] = set()
    for request_id, booking in on_node.items():
        if booking.finish > window_start and booking.uplink.start < window_end and movable(booking):
            found.add(request_id)
    if len(found) > REPACK_VICTIMS_MAX:
        return None
    starts, ends = node.contact_starts, node.contact_ends
    stations = node.contact_stations
    position = node.first_contact_ending_after(window_start)
    stop = min(len(starts), position + CONTACTS_SCANNED_MAX)
    while position < stop and starts[position] < window_end:
        station = stations[position]
        if (ctx.allowed_stations >> station) & 1:
            start = max(starts[position], window_start)
            end = min(ends[position], window_end)
            if start < end and not index.holders(
                station, start, end, movable, found, REPACK_VICTIMS_MAX
            ):
                return None
        position += 1
    return [index.bookings[request_id] for request_id in sorted(found)]
