"""Score: prefer the node on which the request finishes (last downlink ends) soonest.

Owns: normalising finish times across the feasible drafts to 0..100 (earliest 100, latest 0,
all 100 when they are equal). Finishing early frees storage and link time sooner and leaves
the most slack against the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence

from orbitq.services.scheduler.framework import SCORE_MAX, Draft, RequestContext

NAME = "earliest_completion"


class EarliestCompletionPlugin:
    name = NAME

    def score(self, ctx: RequestContext, drafts: Sequence[Draft]) -> list[int]:
        finishes = [draft.finish for draft in drafts]
        soonest, latest = min(finishes), max(finishes)
        if soonest == latest:
            return [SCORE_MAX] * len(drafts)
        span = latest - soonest
        return [SCORE_MAX * (latest - finish) // span for finish in finishes]
