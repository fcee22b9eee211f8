"""PreFilter + Filter: the request fits the node's size at all (cpu, storage).

Owns: the static size check. A request larger than every node is unschedulable at once (the
pre-filter compares with the world's largest node, whatever its state); a node too small for
it is turned away without looking at its timelines. Both are unresolvable.

Does not own: capacity over time (capacity.py).
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import (
    SUCCESS,
    RequestContext,
    Status,
    unresolvable,
)
from orbitq.services.scheduler.world import NodeInfo

NAME = "node_resources"
REASON_CPU_EVERY_NODE = "cpu larger than every node"
REASON_STORAGE_EVERY_NODE = "storage larger than every node"
REASON_CPU = "cpu larger than the node"
REASON_STORAGE = "storage larger than the node"

_CPU = unresolvable(NAME, REASON_CPU)
_STORAGE = unresolvable(NAME, REASON_STORAGE)


class NodeResourcesPlugin:
    name = NAME

    def pre_filter(self, ctx: RequestContext) -> Status:
        request, world = ctx.request, ctx.world
        if request.cpu_millicores > world.cpu_max:
            return unresolvable(NAME, REASON_CPU_EVERY_NODE)
        if request.storage_mb > world.storage_max:
            return unresolvable(NAME, REASON_STORAGE_EVERY_NODE)
        return SUCCESS

    def filter(self, ctx: RequestContext, node: NodeInfo) -> Status:
        request, size = ctx.request, node.node
        if request.cpu_millicores > size.cpu_millicores:
            return _CPU
        if request.storage_mb > size.storage_mb:
            return _STORAGE
        return SUCCESS
