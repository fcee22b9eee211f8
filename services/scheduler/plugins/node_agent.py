"""Filter: only nodes with an enrolled node agent take new work (settlement by usage receipts).

Owns: the rule that work goes only where something will pull its ticket, run it and sign a
receipt. Used only when usage receipts complete work (`SchedulerConfig.agents_required`); in
settlement "plan" the clock runs work as placed and any node takes it. Resolvable: the node's
agent may enroll later.

Does not own: enrollment (orbitq.services.agents) or the node's state (node_state).
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import SUCCESS, RequestContext, Status, unschedulable
from orbitq.services.scheduler.world import NodeInfo

NAME = "node_agent"
REASON_NO_AGENT = "node has no enrolled agent"

_NO_AGENT = unschedulable(NAME, REASON_NO_AGENT)


class NodeAgentPlugin:
    name = NAME

    def filter(self, ctx: RequestContext, node: NodeInfo) -> Status:
        return SUCCESS if node.node.agent else _NO_AGENT
