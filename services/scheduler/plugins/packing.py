"""Score: prefer nodes already busy during the run (bin packing, Kubernetes' MostAllocated).

Owns: the share of the node's cpu and storage that would be in use at the busiest instant of
the run once the request is added, averaged over the two, as 0..100. Packing work onto busy
nodes leaves whole nodes free for large requests.
"""

from __future__ import annotations

from collections.abc import Sequence

from orbitq.services.scheduler.framework import SCORE_MAX, Draft, RequestContext

NAME = "packing"


class PackingPlugin:
    name = NAME

    def score(self, ctx: RequestContext, drafts: Sequence[Draft]) -> list[int]:
        request = ctx.request
        scores = []
        for draft in drafts:
            node = draft.node
            start, end = draft.start, draft.end
            cpu = (node.cpu.max_over(start, end) + request.cpu_millicores) * SCORE_MAX
            storage = (node.storage.max_over(start, end) + request.storage_mb) * SCORE_MAX
            share = cpu // node.node.cpu_millicores + storage // node.node.storage_mb
            scores.append(min(SCORE_MAX, share // 2))
        return scores
