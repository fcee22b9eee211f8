"""Node health: heartbeats, the tickets agents refused, and nodes that stop answering.

Owns:
- `heartbeat`: the node's agent is alive — its last heartbeat and a count of missed contacts
  reset; a node the broker (not an operator) degraded for missed contacts is ready again (a
  down node stays down: operators decide that); each ticket refusal it reports is recorded
  (`ticket_refusals`) and, when it refuses the ticket of the request's current placement, the
  request is the operator's fault (requests.faults: placed again while the deadline allows,
  else FAILED and refunded);
- `check_nodes` (a job): per enrolled node that reaches the ground only in contacts, the
  contacts that ended (with the tolerance) since its last heartbeat (or enrollment) are
  missed; at `missed_contacts_degraded` the node goes degraded (it takes no new work), at
  `missed_contacts_down` down (the scheduling loop re-places or fails its work, refunded).

Does not own: node states' meaning (the constellation and the scheduler) or gating.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from orbitq.ledger.tickets import RefusalReason
from orbitq.services.agents.tables import NODE_AGENTS, TICKET_REFUSALS
from orbitq.services.agents.tickets import Tickets
from orbitq.services.auth import SYSTEM
from orbitq.services.clock import NANOS_PER_SECOND, from_ns
from orbitq.services.constellation import Constellation, NodeRecord, NodeState
from orbitq.services.db.engine import driver_execute, write_transaction
from orbitq.services.requests.faults import operator_fault
from orbitq.services.requests.model import RequestState
from orbitq.services.requests.store import RequestStore

log = logging.getLogger(__name__)

S = RequestState
REFUSALS_PER_HEARTBEAT_MAX = 100
RUNNING_PER_HEARTBEAT_MAX = 1_000
DETAIL_CHARS_MAX = 500
REQUEST_ID_CHARS = 32
# Contacts looked at per node per check (a node missing more is long down anyway).
CONTACTS_COUNTED_MAX = 1_000
LIVE = frozenset({S.PLACED, S.RUNNING})
_HEARTBEAT_SQL = (
    "UPDATE node_agents SET last_heartbeat_ns = ?, missed_contacts = ?, degraded_by_broker = ?"
    " WHERE node = ?"
)


@dataclass(frozen=True, slots=True)
class TicketRefusal:
    request_id: str
    ticket_digest: bytes
    reason: int  # orbitq.v1.TicketRefusalReason
    detail: str
    at_ns: int


@dataclass(frozen=True, slots=True)
class Thresholds:
    tolerance_seconds: int
    degraded: int
    down: int


class NodeHealth:
    def __init__(
        self,
        engine: sa.Engine,
        constellation: Constellation,
        store: RequestStore,
        tickets: Tickets,
        thresholds: Thresholds,
        now_ns: Callable[[], int],
        announce: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._constellation = constellation
        self._store = store
        self._tickets = tickets
        self._thresholds = thresholds
        self._now_ns = now_ns
        self._announce = announce

    # -- heartbeat -----------------------------------------------------------------------------

    def heartbeat(self, node: NodeRecord, refusals: Sequence[TicketRefusal]) -> NodeState:
        """Record the heartbeat and the refusals it carries; the node's state after."""
        agent = node.agent
        assert agent is not None
        now_ns = self._now_ns()
        # One simple statement on every heartbeat: through the driver's cursor (SQLAlchemy's
        # statement work cost more of the GIL than SQLite's write).
        with write_transaction(self._engine) as connection:
            driver_execute(connection, _HEARTBEAT_SQL, (now_ns, 0, False, node.id))
        state = node.state
        if state == "degraded" and agent.degraded_by_broker:
            state = self._constellation.set_node_state(SYSTEM, node.id, "ready").state
            log.info("node %s answered again: ready", node.id)
        self._refusals(node.id, refusals, now_ns)
        return state

    def _refusals(self, node: str, refusals: Sequence[TicketRefusal], now_ns: int) -> None:
        if not refusals:
            return
        with write_transaction(self._engine) as connection:
            connection.execute(
                sa.insert(TICKET_REFUSALS),
                [
                    {
                        "node": node,
                        "request_id": r.request_id[:REQUEST_ID_CHARS],
                        "ticket_digest": r.ticket_digest,
                        "reason": r.reason,
                        "detail": r.detail[:DETAIL_CHARS_MAX],
                        "refused_ns": r.at_ns,
                        "recorded_ns": now_ns,
                    }
                    for r in refusals
                ],
            )
        moves = []
        now_s = now_ns // NANOS_PER_SECOND
        for refusal in refusals:
            request = self._store.get(refusal.request_id)
            if request is None or request.state not in LIVE or request.placement is None:
                continue
            if request.placement.node != node:
                continue
            ticket = self._tickets.current(request.id)
            if ticket is None or ticket.digest != refusal.ticket_digest:
                continue  # an older placement's ticket: the current one stands
            why = f"node {node}'s agent refused its ticket ({_reason_name(refusal.reason)}:"
            why += f" {refusal.detail[:200]})" if refusal.detail else ")"
            moves.append(operator_fault(request, now_s, why))
        if moves:
            self._store.apply(moves, now_ns)
            self._announce()

    # -- missed contacts -----------------------------------------------------------------------

    def check_nodes(self) -> dict[str, NodeState]:
        """Degrade or take down enrolled nodes that missed contacts; {node: new state}."""
        now_ns = self._now_ns()
        tolerance_ns = self._thresholds.tolerance_seconds * NANOS_PER_SECOND
        changed: dict[str, NodeState] = {}
        for node in self._constellation.nodes():
            agent = node.agent
            if agent is None or agent.ground_link == "always" or node.state == "down":
                continue
            since = agent.last_heartbeat_ns or agent.enrolled_ns
            # A heartbeat at this very instant (a simulated clock) leaves no span to count in.
            missed = (
                0
                if since >= now_ns
                else sum(
                    1
                    for contact in self._constellation.contacts_between(
                        from_ns(since), from_ns(now_ns), node=node.id
                    )[:CONTACTS_COUNTED_MAX]
                    if contact.aos_ns > since and contact.los_ns + tolerance_ns < now_ns
                )
            )
            state = self._state_for(node, missed)
            degraded_by_broker = agent.degraded_by_broker or (
                state == "degraded" and node.state == "ready"
            )
            # Most counts change nothing (a node that answers has missed none): no write then.
            if (missed, degraded_by_broker) != (agent.missed_contacts, agent.degraded_by_broker):
                with write_transaction(self._engine) as connection:
                    connection.execute(
                        sa.update(NODE_AGENTS)
                        .where(NODE_AGENTS.c.node == node.id)
                        .values(missed_contacts=missed, degraded_by_broker=degraded_by_broker)
                    )
            if state != node.state:
                self._constellation.set_node_state(SYSTEM, node.id, state)
                log.warning(
                    "node %s missed %d contacts without a heartbeat: %s", node.id, missed, state
                )
                changed[node.id] = state
        return changed

    def _state_for(self, node: NodeRecord, missed: int) -> NodeState:
        if missed >= self._thresholds.down:
            return "down"
        if missed >= self._thresholds.degraded and node.state == "ready":
            return "degraded"
        return node.state


def _reason_name(reason: int) -> str:
    try:
        return RefusalReason(reason).name.lower()
    except ValueError:
        return f"reason {reason}"
