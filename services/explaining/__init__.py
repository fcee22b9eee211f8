"""orbitq.services.explaining: why a request waits, when it would run, what would make it fit.

Owns: answers computed on a scratch copy of the scheduler's world — never the leader's live
scheduler, never the stored schedule (docs/scheduler.md, "Explain and ETA"):

| module | owns |
| --- | --- |
| `scratch` | the copy: stored nodes, stations, contacts and live placements, bounded |
| `probe` | one cycle of one request on the copy; the later-deadline and station searches |
| `service` | `Explainer`: who may ask, the answers for people and scripts |

Dependency rule: explaining imports requests, the scheduler and the scheduling conversions;
nothing imports explaining but the servicer and the broker that composes it.
"""

from __future__ import annotations

from orbitq.services.explaining.service import Eta, Explainer, Explanation

__all__ = ["Eta", "Explainer", "Explanation"]
