"""PreFilter + Filter: the request's node selector (required labels, allowed node ids).

Owns: narrowing the candidate nodes to those matching the selector (via the world's label
index, so a selective request never walks every node) and the per-node check. A selector no
node matches is unresolvable: the set of nodes changes only with `set_world`.

Does not own: node state or capacity.
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import (
    SUCCESS,
    RequestContext,
    Status,
    unresolvable,
)
from orbitq.services.scheduler.world import NodeInfo

NAME = "node_selector"
REASON_NO_NODE = "no node matches the node selector"
REASON_MISMATCH = "node does not match the node selector"

_MISMATCH = unresolvable(NAME, REASON_MISMATCH)


class NodeSelectorPlugin:
    name = NAME

    def pre_filter(self, ctx: RequestContext) -> Status:
        request = ctx.request
        if not request.node_ids and not request.node_labels:
            return SUCCESS
        world = ctx.world
        if request.node_labels:
            chosen = world.nodes_with_labels(request.node_labels)
            if request.node_ids:
                wanted = set(request.node_ids)
                chosen = [i for i in chosen if world.nodes[i].node.id in wanted]
        else:
            found = (world.node_index.get(node_id) for node_id in request.node_ids)
            chosen = sorted({i for i in found if i is not None})
        if not chosen:
            return unresolvable(NAME, REASON_NO_NODE)
        ctx.candidates = chosen
        ctx.narrowed_by = NAME
        ctx.narrowed_reason = REASON_MISMATCH
        return SUCCESS

    def filter(self, ctx: RequestContext, node: NodeInfo) -> Status:
        request = ctx.request
        if ctx.narrowed_by == NAME or (not request.node_ids and not request.node_labels):
            return SUCCESS
        if request.node_ids and node.node.id not in request.node_ids:
            return _MISMATCH
        labels = node.node.labels
        for key, value in request.node_labels.items():
            if labels.get(key) != value:
                return _MISMATCH
        return SUCCESS
