"""Contact gating: a satellite's agent reaches the broker only inside its contact windows.

Owns: the rule every node call but EnrollNode passes first — the node's agent may call within
[aos - tolerance, los + tolerance] of one of the node's stored contacts (the tolerance covers
clock skew and the refinement of AOS/LOS to whole seconds), unless it was enrolled with the
ground link "always" (a ground stand-in); otherwise FAILED_PRECONDITION naming the next
contact ("node N is outside its contact windows; the next is with station S from T to T'"),
or saying the plan's horizon holds none — and the node's next contact windows, which
PullTickets and Heartbeat return so the agent knows when to call again.

Does not own: the contact plan (orbitq.services.constellation) or what a call does.
"""

from __future__ import annotations

from orbitq.services.clock import NANOS_PER_SECOND, from_ns
from orbitq.services.constellation import Constellation, NodeAgentInfo, StoredContact
from orbitq.services.errors import FailedPreconditionError
from orbitq.services.scheduler import rfc3339

# Contact windows returned to an agent (earliest first).
CONTACTS_RETURNED_MAX = 64


def _when(ns: int) -> str:
    return rfc3339(ns // NANOS_PER_SECOND)


class ContactGate:
    def __init__(self, constellation: Constellation, tolerance_seconds: int) -> None:
        self._constellation = constellation
        self._tolerance_ns = tolerance_seconds * NANOS_PER_SECOND

    def check(self, node: str, agent: NodeAgentInfo, now_ns: int) -> None:
        """Pass, or FailedPreconditionError naming the node's next contact."""
        if agent.ground_link == "always":
            return
        # A second of margin each way: datetimes keep microseconds, the contacts nanoseconds.
        near = self._constellation.contacts_between(
            from_ns(now_ns - self._tolerance_ns - NANOS_PER_SECOND),
            from_ns(now_ns + self._tolerance_ns + NANOS_PER_SECOND),
            node=node,
        )
        if any(
            c.aos_ns - self._tolerance_ns <= now_ns <= c.los_ns + self._tolerance_ns for c in near
        ):
            return
        upcoming = [c for c in self.next_contacts(node, now_ns, 1) if c.aos_ns > now_ns]
        if not upcoming:
            raise FailedPreconditionError(
                f"node {node} is outside its contact windows, and the contact plan's horizon"
                " holds no further contact of it"
            )
        nxt = upcoming[0]
        raise FailedPreconditionError(
            f"node {node} is outside its contact windows; the next is with station"
            f" {nxt.station} from {_when(nxt.aos_ns)} to {_when(nxt.los_ns)}"
        )

    def next_contacts(
        self, node: str, now_ns: int, limit: int = CONTACTS_RETURNED_MAX
    ) -> list[StoredContact]:
        """The node's contacts that have not ended by `now_ns`, earliest first."""
        horizon_end_ns = self._constellation.plan().horizon_end_ns
        if horizon_end_ns <= now_ns:
            return []
        found: list[StoredContact] = []
        for batch in self._constellation.iter_contacts_between(
            from_ns(now_ns), from_ns(horizon_end_ns), node=node
        ):
            found.extend(c for c in batch if c.los_ns > now_ns)
            if len(found) >= limit:
                break
        return found[:limit]
