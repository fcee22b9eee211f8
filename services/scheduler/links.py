"""Searches over one node's contacts for free link time: the uplink slot and the downlink plan.

Owns: `find_uplink` (the earliest contiguous slot for the ticket and input), `plan_downlink`
(the earliest-finishing set of segments carrying the output) and `contact_seconds` (how much
contact time exists at all, used to explain a failure). Free link time is contact time in
which the station has an idle antenna and the node's radio is idle (`World.free_link_runs`).

Does not own: reasons or statuses (the uplink and downlink plugins turn results into them) or
any reservation.

Both searches walk the node's contacts in start order from the first one that may still be
open, skip stations outside the allowed bitmask, and stop as soon as no later contact can
improve the answer; `CONTACTS_SCANNED_MAX` bounds each walk.
"""

from __future__ import annotations

from bisect import bisect_right

from orbitq.services.scheduler.framework import Segment
from orbitq.services.scheduler.model import DOWNLINK_SEGMENTS_MAX, TIME_MAX
from orbitq.services.scheduler.world import NodeInfo, World

CONTACTS_SCANNED_MAX = 4096
DOWNLINK_SEGMENT_SECONDS_MIN = 10  # shorter pieces only to finish the last seconds


def find_uplink(
    world: World, node: NodeInfo, *, allowed: int, earliest: int, latest_end: int, seconds: int
) -> Segment | None:
    """The earliest [at, at + seconds) inside one allowed contact, within [earliest, latest_end)."""
    assert seconds > 0
    starts, ends = node.contact_starts, node.contact_ends
    stations = node.contact_stations
    count = len(starts)
    index = bisect_right(node.contact_max_ends, earliest)
    last_start = latest_end - seconds
    stop = min(count, index + CONTACTS_SCANNED_MAX)
    best_at = TIME_MAX
    best_index = -1
    while index < stop:
        contact_start = starts[index]
        if contact_start > last_start or contact_start >= best_at:
            break
        station = stations[index]
        if (allowed >> station) & 1:
            start = max(contact_start, earliest)
            end = min(ends[index], latest_end)
            if end - start >= seconds:
                at = world.earliest_link_slot(node, station, start, end, seconds)
                if at is not None and at < best_at:
                    best_at, best_index = at, index
        index += 1
    if best_index < 0:
        return None
    contact = node.contact_ids[best_index]
    return Segment(contact, stations[best_index], best_at, best_at + seconds)


Run = tuple[int, int, str, int]  # start, end, contact id, station index
Piece = tuple[str, int, int, int]  # contact id, station index, start, end


def plan_downlink(
    world: World, node: NodeInfo, *, allowed: int, after: int, deadline: int, seconds: int
) -> tuple[list[Segment] | None, bool]:
    """Segments after `after` adding up to `seconds`, finishing as early as possible by
    `deadline`. Returns (segments or None, fragmented): fragmented means enough free time was
    found but only in more than `DOWNLINK_SEGMENTS_MAX` pieces."""
    assert seconds > 0
    starts, ends = node.contact_starts, node.contact_ends
    stations, ids = node.contact_stations, node.contact_ids
    count = len(starts)
    index = bisect_right(node.contact_max_ends, after)
    stop = min(count, index + CONTACTS_SCANNED_MAX)
    piece = min(DOWNLINK_SEGMENT_SECONDS_MIN, seconds)
    runs: list[Run] = []
    free = 0
    bound = deadline  # a contact starting at or after the best finish cannot improve it
    plan: list[Piece] | None = None
    fragmented = False
    while index < stop:
        contact_start = starts[index]
        if contact_start >= bound:
            break
        station = stations[index]
        if (allowed >> station) & 1:
            start = max(contact_start, after)
            end = min(ends[index], deadline)
            if end > start:
                contact = ids[index]
                # Only a contact's first `seconds` of usable free time can be in the plan.
                for run_start, run_end in world.free_link_runs(
                    node, station, start, end, enough=seconds, piece=piece
                ):
                    runs.append((run_start, run_end, contact, station))
                    free += run_end - run_start
                if free >= seconds:
                    plan, fragmented = _fill(runs, after, seconds, piece)
                    if plan is not None:
                        bound = plan[-1][3]
        index += 1
    if plan is None:
        return None, fragmented
    return [Segment(*item) for item in plan], False


def _fill(runs: list[Run], after: int, seconds: int, piece: int) -> tuple[list[Piece] | None, bool]:
    """Take free seconds in time order, never two at once (one radio), pieces of at least
    `piece` seconds unless finishing."""
    runs.sort()
    cursor = after
    remaining = seconds
    out: list[Piece] = []
    for run_start, run_end, contact, station in runs:
        start = max(run_start, cursor)
        take = min(run_end - start, remaining)
        if take <= 0 or take < min(piece, remaining):
            continue
        if out and out[-1][0] == contact and out[-1][3] == start:
            out[-1] = (contact, station, out[-1][2], start + take)
        else:
            if len(out) == DOWNLINK_SEGMENTS_MAX:
                return None, True
            out.append((contact, station, start, start + take))
        cursor = start + take
        remaining -= take
        if remaining == 0:
            return out, False
    return None, False


def contact_seconds(node: NodeInfo, allowed: int, start: int, end: int, enough: int) -> int:
    """Seconds of contact at allowed stations within [start, end), ignoring occupancy (an
    upper bound: overlapping contacts count twice); stops counting once it reaches `enough`."""
    if start >= end:
        return 0
    starts, ends, stations = node.contact_starts, node.contact_ends, node.contact_stations
    index = node.first_contact_ending_after(start)
    stop = min(len(starts), index + CONTACTS_SCANNED_MAX)
    total = 0
    while index < stop and starts[index] < end:
        if (allowed >> stations[index]) & 1:
            total += max(0, min(ends[index], end) - max(starts[index], start))
            if total >= enough:
                return total
        index += 1
    return total


LINK_GAP_NONE = 0
LINK_GAP_UPLINK = 1  # no allowed contact holds the uplink in time
LINK_GAP_DOWNLINK = 2  # no allowed contact time for the downlink after the soonest run


def link_gap(
    node: NodeInfo, allowed: int, *, earliest: int, run: int, deadline: int, up: int, down: int
) -> int:
    """Whether the node's contacts alone (every antenna and its radio idle) leave room for an
    uplink of `up` seconds inside one allowed contact from `earliest`, then `run` seconds,
    then `down` seconds of allowed contact time by `deadline`: LINK_GAP_NONE if so, else the
    link that lacks contact time. With the fastest radios' `up` and `down` this is a
    relaxation of the uplink and downlink fits: a node it turns away would fail them
    whatever the occupancy (the station selector narrows with it, the in-time filter checks
    with it)."""
    latest_end = deadline - run - down
    starts, ends, stations = node.contact_starts, node.contact_ends, node.contact_stations
    index = node.first_contact_ending_after(earliest)
    stop = min(len(starts), index + CONTACTS_SCANNED_MAX)
    soonest = TIME_MAX  # the earliest conceivable end of the uplink
    while index < stop:
        start = starts[index]
        if start + up > latest_end or start + up >= soonest:
            break
        if (allowed >> stations[index]) & 1:
            at = start if start > earliest else earliest
            if at + up <= min(ends[index], latest_end) and at + up < soonest:
                soonest = at + up
        index += 1
    if soonest == TIME_MAX:
        return LINK_GAP_UPLINK
    if down > 0 and contact_seconds(node, allowed, soonest + run, deadline, down) < down:
        return LINK_GAP_DOWNLINK
    return LINK_GAP_NONE
