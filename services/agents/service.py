"""`Agents`: the broker's side of the node agents — the one object NodeAgentService, the
enrollment-token and evidence RPCs, and the broker's jobs call.

Who may call what (checked here, first, against the caller's Principal):

| method | operator | tenant key | node key |
| --- | --- | --- | --- |
| `create_enrollment_token` | yes | no | no |
| `enroll` | the enrollment token is the credential (no API key) | | |
| the node calls (below) | no | no | its own node: enrolled, in a contact (gating.py) |
| `evidence` | any request | its own tenant's (another's: NOT_FOUND) | no |

The node calls: `pull_tickets`, `fetch_blob`, `open_result`, `put_result_chunk`,
`report_receipt`, `heartbeat`. A node key acts only for its node: a request placed on another
node is PERMISSION_DENIED, a blob no ticket of its node names is NOT_FOUND. The methods
without a principal (`check_nodes`, `expire_results`, `tickets.pulled`) are the broker's jobs
and the scheduling loop's.

Does not own: the rules of each part (enrollment, tokens, gating, tickets, receipts, health;
orbitq.services.blobs for files) or transport.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from orbitq.ledger.model import id_to_bytes
from orbitq.ledger.store.writer import GroupCommitWriter
from orbitq.services.agents import tokens
from orbitq.services.agents.enrollment import Enrolled, Enrollment, EnrollRequest
from orbitq.services.agents.gating import ContactGate
from orbitq.services.agents.health import NodeHealth, Thresholds, TicketRefusal
from orbitq.services.agents.receipts import ReceiptDesk, Settled
from orbitq.services.agents.ticket_key import TicketSigner
from orbitq.services.agents.tickets import TICKETS_PER_PULL_MAX, Due, StoredTicket, Tickets
from orbitq.services.auth import Authenticator, Principal
from orbitq.services.blobs import digests
from orbitq.services.blobs.service import Chunk, chunk_size, read_chunk
from orbitq.services.blobs.store import BlobStore
from orbitq.services.blobs.uploads import ResultUploads
from orbitq.services.clock import NANOS_PER_SECOND
from orbitq.services.constellation import (
    Constellation,
    GroundLink,
    NodeAgentInfo,
    NodeRecord,
    NodeState,
    StoredContact,
    WorldVersion,
)
from orbitq.services.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from orbitq.services.identity.api_keys import Role
from orbitq.services.requests import Requests, RequestState, StoredRequest
from orbitq.services.requests.model import ReceiptFacts
from orbitq.services.requests.reservations import KINDS, Step, amount_of, transfer_id
from orbitq.services.requests.store import PlacedUplink
from orbitq.services.scheduler import UPLINK_NOTICE_MARGIN_SECONDS

S = RequestState
FETCH_CHUNK_BYTES_MAX = 1024 * 1024
SHA256_BYTES = 32
# Node records kept for the node calls (a fleet larger than this drops them and starts over).
NODES_KEPT_MAX = 100_000


@dataclass(frozen=True, slots=True)
class AgentSettings:
    tolerance_seconds: int
    receipt_grace_seconds: int
    missed_contacts_degraded: int
    missed_contacts_down: int
    result_retention_days: float
    # A ticket may be pulled this long before its uplink instant, inside its uplink contact
    # (docs/agent.md, "Pulling tickets"); 0: from the uplink instant.
    pull_lead_seconds: int = 0
    # The scheduler's notice of new work (nothing placed to begin sooner than this after its
    # cycle; SchedulerConfig.uplink_notice_seconds): a pull then says when to pull next
    # (docs/agent.md, "Pulling less"). 0: no notice, no such answer.
    pull_notice_seconds: int = 0


@dataclass(frozen=True, slots=True)
class Pulled:
    tickets: list[StoredTicket]
    contacts: list[StoredContact]
    now_ns: int
    # No ticket of the node becomes due before this (None: no notice is given; pull often).
    next_pull_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Beat:
    state: NodeState
    contacts: list[StoredContact]
    now_ns: int


@dataclass(frozen=True, slots=True)
class Evidence:
    request: StoredRequest
    ticket: bytes
    receipt: ReceiptFacts | None
    receipt_entry_index: int
    settlement_transfer_ids: list[bytes]


class Agents:
    def __init__(
        self,
        engine: sa.Engine,
        settings: AgentSettings,
        constellation: Constellation,
        requests: Requests,
        blobs: BlobStore,
        writer: GroupCommitWriter,
        authenticator: Authenticator,
        signer: TicketSigner,
        now_ns: Callable[[], int],
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._constellation = constellation
        self._requests = requests
        self._blobs = blobs
        self._now_ns = now_ns
        self.signer = signer
        # The node calls' copies of their nodes, as of world revision `_nodes_revision`: a
        # node's copy is read once, then again only when the node itself is written (its row's
        # `revision` moves past the copy's: `changed_nodes`), not at every write of the world.
        self._nodes: dict[str, NodeRecord] = {}
        self._nodes_revision: int | None = None
        self._nodes_lock = threading.Lock()
        store = requests.store
        self.tickets = Tickets(engine, store, blobs, signer, now_ns)
        self.uploads = ResultUploads(engine, blobs, now_ns)
        self.gate = ContactGate(constellation, settings.tolerance_seconds)
        self._enrollment = Enrollment(engine, constellation, writer, authenticator, now_ns)
        self._receipts = ReceiptDesk(
            engine,
            store,
            requests.reservations,
            self.tickets,
            self.uploads,
            settings.receipt_grace_seconds,
            now_ns,
            requests.wake_watchers,
        )
        self.health = NodeHealth(
            engine,
            constellation,
            store,
            self.tickets,
            Thresholds(
                settings.tolerance_seconds,
                settings.missed_contacts_degraded,
                settings.missed_contacts_down,
            ),
            now_ns,
            requests.wake_watchers,
        )

    # -- operators -----------------------------------------------------------------------------

    def create_enrollment_token(
        self, principal: Principal, node: str, ground_link: GroundLink, ttl_seconds: int
    ) -> tokens.NewToken:
        principal.require_operator("making an enrollment token")
        ttl = tokens.ttl_seconds(ttl_seconds)
        self._constellation.node(node)  # NotFoundError names it
        return tokens.create(self._engine, node, ground_link, ttl, self._now_ns())

    # -- the agent, without a key --------------------------------------------------------------

    def enroll(self, request: EnrollRequest) -> Enrolled:
        return self._enrollment.enroll(request)

    # -- the agent, with its node key ----------------------------------------------------------

    def _node(self, principal: Principal, action: str, *, cached: bool = False) -> NodeRecord:
        """The caller's node, enrolled and (unless its ground link is "always") in contact.
        `cached`: the record may be the copy kept as of the current world version (its
        identity, capacity, state and enrolled key are then current; its heartbeat counters
        may not be)."""
        if cached:
            return self._node_at(principal, action)[0]
        principal.require_role(Role.NODE, action=action)
        node = self._constellation.node(principal.node_scope("", action))
        self.gate.check(node.id, self._require_agent(node), self._now_ns())
        return node

    def _node_at(
        self, principal: Principal, action: str, connection: sa.Connection | None = None
    ) -> tuple[NodeRecord, WorldVersion]:
        """`_node` from the copy kept as of the current world version, with that version (read
        once per call, through `connection` when given: the gate's copy of the node's contacts
        is checked against it too)."""
        principal.require_role(Role.NODE, action=action)
        node_id = principal.node_scope("", action)
        version = self._constellation.world_version(connection)
        node = self._kept_node(node_id, version.world_revision)
        agent = self._require_agent(node)
        self.gate.check(node.id, agent, self._now_ns(), version)
        return node, version

    def _kept_node(self, node_id: str, revision: int) -> NodeRecord:
        """The node's record, at least as new as world revision `revision`. The copies move
        forward together: at a newer revision, the nodes written since (`changed_nodes`, one
        read for all of them, usually one or none) replace theirs. Every write of a node's
        record or its agent's enrolment stamps the node (`touch_nodes`) in the transaction
        that moves the world revision, so a copy not replaced is still the stored record
        (but its heartbeat counters, written without the world moving; callers know)."""
        with self._nodes_lock:
            kept_revision = self._nodes_revision
            found = self._nodes.get(node_id)
        if kept_revision is None or revision > kept_revision:
            # Read after the caller's version: it holds every write up to `revision`, maybe
            # later ones too (a later revision then reads them again: harmless). No copy yet:
            # nothing to replace (each node is read when first asked for).
            changed = (
                self._constellation.changed_nodes(kept_revision)
                if kept_revision is not None
                else []
            )
            with self._nodes_lock:
                if self._nodes_revision == kept_revision:
                    for record in changed:
                        if record.id in self._nodes:
                            self._nodes[record.id] = record
                    self._nodes_revision = revision
                kept_revision = self._nodes_revision
                # Another call may have moved the copies on first, to a revision older than
                # this call's (its read discarded, ours not applied): then they may miss a
                # write this call's version holds, and the node is read afresh below.
                fresh_enough = kept_revision is not None and kept_revision >= revision
                found = self._nodes.get(node_id) if fresh_enough else None
        if found is not None:
            return found
        node = self._constellation.node(node_id)  # NotFoundError names it
        with self._nodes_lock:
            # Kept only if no other call moved the copies on meanwhile (else this read may be
            # older than what the move replaced: it serves this call, is read again next time).
            if self._nodes_revision == kept_revision:
                if len(self._nodes) >= NODES_KEPT_MAX:
                    self._nodes.clear()
                self._nodes[node_id] = node
        return node

    @staticmethod
    def _require_agent(node: NodeRecord) -> NodeAgentInfo:
        if node.agent is None:
            raise FailedPreconditionError(
                f"node {node.id} has no enrolled agent: enroll it first (`orbitq node enroll"
                f" {node.id}`, then `orbitq agent init`)"
            )
        return node.agent

    def pull_tickets(self, principal: Principal, max_tickets: int) -> Pulled:
        node, version = self._node_at(principal, "pull tickets for")
        if max_tickets > TICKETS_PER_PULL_MAX:
            raise InvalidArgumentError(
                f"max_tickets {max_tickets} is above {TICKETS_PER_PULL_MAX} (0 means that many)"
            )
        now_ns = self._now_ns()
        due = self.tickets.pull(
            node,
            self._settings.tolerance_seconds,
            max_tickets or TICKETS_PER_PULL_MAX,
            lambda placed: self._pull_opens(node.id, placed, now_ns, version),
        )
        contacts = self.gate.next_contacts(node.id, now_ns, version=version)
        return Pulled(due.tickets, contacts, now_ns, self._next_pull_ns(now_ns, due))

    def _next_pull_ns(self, now_ns: int, due: Due) -> int | None:
        """With a notice of new work: the earliest instant a ticket of this node can become
        due — a placement already made whose pull window opens, or one the scheduler makes
        from now on, which begins no sooner than its cycle + the notice. The cycle computes
        at its `now` and commits moments later: the margin covers that."""
        notice = self._settings.pull_notice_seconds
        if notice <= 0:
            return None
        now_s = now_ns // NANOS_PER_SECOND
        next_s = now_s + max(notice - UPLINK_NOTICE_MARGIN_SECONDS, 0)
        if due.next_opens_s is not None:
            next_s = min(next_s, due.next_opens_s)
        return max(next_s * NANOS_PER_SECOND, now_ns)

    def _pull_opens(
        self, node: str, placed: PlacedUplink, now_ns: int, version: WorldVersion
    ) -> int:
        """When a placed request's ticket may first be pulled (seconds): the pull lead before
        its uplink instant, but not before its uplink contact begins — an agent polling at
        its own cadence inside that contact gets the ticket, and no earlier contact carries
        it (preemption and re-placement assume no ticket is aboard before the uplink contact).
        The uplink instant itself when the lead is 0 or the contact is no longer stored."""
        lead = self._settings.pull_lead_seconds
        if lead <= 0:
            return placed.uplink_at
        contact = self.gate.contact(node, placed.uplink_contact, now_ns, version)
        if contact is None:
            return placed.uplink_at
        aos_s = -(-contact.aos_ns // NANOS_PER_SECOND)
        return min(placed.uplink_at, max(placed.uplink_at - lead, aos_s))

    def fetch_blob(self, principal: Principal, digest: str, offset: int, max_bytes: int) -> Chunk:
        node = self._node(principal, "fetch blobs for", cached=True)
        digest_hex = digests.parse(digest)
        size = chunk_size(max_bytes, FETCH_CHUNK_BYTES_MAX)
        if not self.tickets.names_blob(node.id, digest_hex):
            raise NotFoundError(f"no ticket of node {node.id} names {digest}")
        return read_chunk(self._blobs, digest_hex, offset, size)

    def _own_live_request(self, node: NodeRecord, request_id: str) -> StoredRequest:
        """The node's request whose run began (RUNNING, or PLACED past its start)."""
        request = self._requests.stored(_request_id(request_id))
        if request is None:
            raise NotFoundError(f"no request {request_id}")
        placement = request.placement
        if placement is None or placement.node != node.id:
            raise PermissionDeniedError(f"request {request.id} is not placed on node {node.id}")
        now_s = self._now_ns() // NANOS_PER_SECOND
        began = request.state is S.RUNNING or (
            request.state is S.PLACED and placement.start <= now_s
        )
        if not began:
            raise FailedPreconditionError(
                f"request {request.id} is {request.state.label}: results come from running work"
            )
        return request

    def open_result(self, principal: Principal, request_id: str, size: int, sha256: bytes) -> int:
        node = self._node(principal, "downlink results for", cached=True)
        request = self._own_live_request(node, request_id)
        if len(sha256) != SHA256_BYTES:
            raise InvalidArgumentError(f"sha256 must be {SHA256_BYTES} bytes, got {len(sha256)}")
        ticket = self.tickets.current(request.id)
        limit = ticket.output_bytes_max if ticket is not None else 0
        if size > limit:
            raise InvalidArgumentError(
                f"the result is {size:,} bytes, over request {request.id}'s output limit"
                f" {limit:,} (its outcome is output too large: report the receipt without it)"
            )
        return self.uploads.open(request.id, node.id, request.tenant, size, sha256)

    def put_result_chunk(
        self, principal: Principal, request_id: str, offset: int, data: bytes
    ) -> tuple[int, bool]:
        node = self._node(principal, "downlink results for", cached=True)
        request = self._own_live_request(node, request_id)
        return self.uploads.put(request.id, request.tenant, offset, data)

    def report_receipt(self, principal: Principal, envelope: bytes) -> Settled:
        # The node is read in the desk's one read connection for the receipt's checks.
        return self._receipts.report(
            lambda connection: self._node_at(principal, "report receipts for", connection)[0],
            envelope,
        )

    def heartbeat(self, principal: Principal, refusals: Sequence[TicketRefusal]) -> Beat:
        # The copy kept as of the world version: its state is current (every change of a
        # node's state stamps the node with the world revision it moves), and so is
        # `degraded_by_broker` whenever the state is degraded (the broker writes it before
        # degrading the node).
        node, version = self._node_at(principal, "send heartbeats for")
        state = self.health.heartbeat(node, refusals)
        now_ns = self._now_ns()
        return Beat(state, self.gate.next_contacts(node.id, now_ns, version=version), now_ns)

    # -- tenants -------------------------------------------------------------------------------

    def evidence(self, principal: Principal, request_id: str) -> Evidence:
        """What backs a request's charge: its ticket, its receipt, where both sit."""
        request = self._requests.get(principal, request_id)
        ticket = self.tickets.current(request.id)
        found = self._requests.store.receipt(request.id)
        receipt, entry_index = found if found is not None else (None, None)
        transfers = []
        if receipt is not None and entry_index is not None:
            transfers = [
                id_to_bytes(transfer_id(request.id, Step.SETTLE, kind))
                for kind in KINDS
                if amount_of(request.settled, kind) > 0
            ]
        return Evidence(
            request=request,
            ticket=ticket.envelope if ticket is not None else b"",
            receipt=receipt,
            receipt_entry_index=entry_index or 0,
            settlement_transfer_ids=transfers,
        )

    # -- the broker's jobs ---------------------------------------------------------------------

    def check_nodes(self) -> dict[str, NodeState]:
        return self.health.check_nodes()

    def expire_results(self) -> int:
        """Delete results (and unfinished uploads) of requests ended longer ago than the
        retention; how many blobs went."""
        days = self._settings.result_retention_days
        cutoff = self._now_ns() - int(days * 86_400 * NANOS_PER_SECOND)
        self.uploads.expire(cutoff)
        return self._blobs.expire_results(cutoff)


def _request_id(text: str) -> str:
    lowered = text.lower()
    if len(lowered) != 32 or any(c not in "0123456789abcdef" for c in lowered):
        raise InvalidArgumentError(f"request id {text[:40]!r} is not 32 hex digits")
    return lowered
