"""Fit: the node can keep the request's storage from the end of the run until the last
downlink segment ends.

Owns: checking the tail [end, finish) of the storage hold once the downlink is planned. On a
conflict it moves the draft's earliest start past the busy stretch, and the framework runs
the fit chain again (bounded by FIT_ROUNDS_MAX).

Does not own: storage during the run (capacity.py) or the reservation.
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import SUCCESS, Draft, RequestContext, Status

NAME = "storage_hold"


class StorageHoldPlugin:
    name = NAME

    def fit(self, ctx: RequestContext, draft: Draft) -> Status:
        request, node = ctx.request, draft.node
        assert draft.finish >= draft.end >= 0
        if request.storage_mb == 0 or draft.finish == draft.end:
            return SUCCESS
        limit = node.node.storage_mb - request.storage_mb
        blocked = node.storage.first_above(draft.end, draft.finish, limit)
        if blocked is not None:
            draft.invalidate(node.storage.next_at_most(blocked, limit))
        return SUCCESS
