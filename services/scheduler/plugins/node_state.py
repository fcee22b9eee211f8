"""Filter: only ready nodes take new work.

Owns: the node-state rule for new placements. `degraded` nodes keep (and run) what is already
placed on them but take nothing new; `down` nodes take nothing new either. Both are resolvable:
a node's state can change back.

Does not own: what happens to placements on a node that goes down (runtime.set_node_state).
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import SUCCESS, RequestContext, Status, unschedulable
from orbitq.services.scheduler.world import NodeInfo

NAME = "node_state"
REASON_DEGRADED = "node degraded"
REASON_DOWN = "node down"

_DEGRADED = unschedulable(NAME, REASON_DEGRADED)
_DOWN = unschedulable(NAME, REASON_DOWN)


class NodeStatePlugin:
    name = NAME

    def filter(self, ctx: RequestContext, node: NodeInfo) -> Status:
        state = node.node.state
        if state == "ready":
            return SUCCESS
        return _DEGRADED if state == "degraded" else _DOWN
