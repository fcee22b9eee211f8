"""Fit: run as late as the downlink allows, so storage is held as briefly as possible.

Owns: moving a complete draft's start later, to the latest instant at or before
(first downlink segment - run) at which the node's cpu is free for the whole run. The uplink
and the downlink plan stay valid (the run only moves later, and still ends before the first
segment), storage was free over [start, finish) so it is free over any tail of it, and the
tenant pays fewer storage MB-hours. With contacts minutes or hours apart, this is what keeps
node storage from filling with results that only wait for a pass.

Does not own: the downlink plan or the uplink. Runs last in the fit chain.
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import SUCCESS, Draft, RequestContext, Status

NAME = "just_in_time"


class JustInTimePlugin:
    name = NAME

    def fit(self, ctx: RequestContext, draft: Draft) -> Status:
        if not draft.downlink:
            return SUCCESS
        run = draft.run_seconds
        latest = draft.downlink[0].start - run
        if latest <= draft.start:
            return SUCCESS
        node, request = draft.node, ctx.request
        later = node.cpu.latest_fit(
            draft.start, run, node.node.cpu_millicores - request.cpu_millicores, latest
        )
        assert later is not None, "the draft's own start fits"
        assert later >= draft.start
        draft.start = later
        return SUCCESS
