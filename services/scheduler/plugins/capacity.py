"""Fit + Reserve/Unreserve: cpu and storage over time on the node.

Owns: the earliest start at or after `draft.start_min` at which the node has the request's
cpu and storage free for the whole run (an earliest-fit search on each step function, repeated
until both agree), and holding them: cpu over [start, end), storage over [start, finish) —
storage stays taken until the result is downlinked. Reserve checks both before committing
either; Unreserve is idempotent.

Does not own: the storage held after the run (storage_hold.py checks it), contacts.
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import (
    SUCCESS,
    Booking,
    Draft,
    RequestContext,
    Status,
    unschedulable,
)
from orbitq.services.scheduler.world import World

NAME = "capacity"
REASON_CPU = "cpu capacity"
REASON_STORAGE = "storage capacity"
ALTERNATIONS_MAX = 16

_CPU = unschedulable(NAME, REASON_CPU)
_STORAGE = unschedulable(NAME, REASON_STORAGE)


class CapacityPlugin:
    name = NAME

    def __init__(self) -> None:
        self._held: set[str] = set()

    def fit(self, ctx: RequestContext, draft: Draft) -> Status:
        request, node = ctx.request, draft.node
        run = request.run_seconds
        latest = request.deadline - run - draft.down_seconds
        start = draft.start_min
        if start > latest:
            return _STORAGE if draft.invalidations else _CPU
        cpu_limit = node.node.cpu_millicores - request.cpu_millicores
        storage_limit = node.node.storage_mb - request.storage_mb
        for _ in range(ALTERNATIONS_MAX):
            cpu_start = node.cpu.earliest_fit(start, run, cpu_limit, latest)
            if cpu_start is None:
                return _CPU
            both = node.storage.earliest_fit(cpu_start, run, storage_limit, latest)
            if both is None:
                return _STORAGE
            if both == cpu_start:
                draft.start = both
                return SUCCESS
            start = both
        return _CPU

    def reserve(self, world: World, booking: Booking) -> Status:
        assert booking.request.id not in self._held, "a booking is reserved once"
        request, node = booking.request, world.nodes[booking.node]
        assert booking.start < booking.end <= booking.finish
        cpu_limit = node.node.cpu_millicores - request.cpu_millicores
        if node.cpu.max_over(booking.start, booking.end) > cpu_limit:
            return _CPU
        storage_limit = node.node.storage_mb - request.storage_mb
        if node.storage.max_over(booking.start, booking.finish) > storage_limit:
            return _STORAGE
        node.cpu.add(booking.start, booking.end, request.cpu_millicores)
        node.storage.add(booking.start, booking.finish, request.storage_mb)
        self._held.add(request.id)
        return SUCCESS

    def unreserve(self, world: World, booking: Booking) -> None:
        request = booking.request
        if request.id not in self._held:
            return
        self._held.discard(request.id)
        node = world.nodes[booking.node]
        node.cpu.add(booking.start, booking.end, -request.cpu_millicores)
        node.storage.add(booking.start, booking.finish, -request.storage_mb)

    def holds(self, request_id: str) -> bool:
        return request_id in self._held
