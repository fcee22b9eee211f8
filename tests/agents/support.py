"""A small, real client of NodeAgentService for the broker's tests, and the world it works in.

`TestAgent` is what a node agent is to the broker, without a sandbox: it holds a real Ed25519
node key, enrolls with a real token over gRPC, pulls and verifies tickets with the pinned
ticket key (orbitq.ledger.tickets), downlinks results in chunks, and signs usage receipts with
orbitq.ledger.receipts.sign_receipt. The node agent itself (clients/agent) is built elsewhere;
this client lets the broker's side be tested end to end meanwhile, against the real server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import grpc
import wasmtime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orbitq.ledger.note import key_id, parse_verifier_key
from orbitq.ledger.receipts import Receipt, RunOutcome, cpu_core_seconds, sign_receipt
from orbitq.ledger.tickets import Ticket, TicketVerifier
from orbitq.services.auth import SYSTEM
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock
from orbitq.services.requests import RequestState, StoredRequest
from orbitq.services.scheduler import Placement
from orbitq.v1 import agent_pb2, agent_pb2_grpc
from tests.conftest import EPOCH, ServerHandle
from tests.requests.sky import add_tenant, at, build_world, spec, tenant

RATE = 15 * 10**9  # fuel per core-second, as a calibration on this machine gives
RUNTIME = "wasmtime 51.0.0"
RESULT_CHUNK_BYTES = 64 * 1024

# The smallest WASI command: exports _start and memory, imports proc_exit.
HELLO_WAT = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 0))))
"""


def module_bytes(wat: str = HELLO_WAT) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


def code_of(error: BaseException) -> grpc.StatusCode:
    """The status of a failed call."""
    assert isinstance(error, grpc.RpcError)
    code: grpc.StatusCode = error.code()
    return code


class TestAgent:
    """One node's agent, speaking to the broker at `target` (see the module docstring)."""

    __test__ = False  # not a pytest class

    def __init__(self, channel: grpc.Channel, node: str, issuer: str) -> None:
        self.node = node
        self.key = Ed25519PrivateKey.generate()
        self.public_key = self.key.public_key().public_bytes_raw()
        self.kid = key_id(node, self.public_key)
        self.stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
        self.issuer = issuer
        self.api_key = ""
        self.verifier: TicketVerifier | None = None
        self.rate = RATE
        self.runtime = RUNTIME

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    def enroll(self, token: str, **overrides: Any) -> agent_pb2.EnrollNodeResponse:
        fields: dict[str, Any] = {
            "node": self.node,
            "public_key": self.public_key,
            "enrollment_token": token,
            "fuel_per_core_second": self.rate,
            "runtime": self.runtime,
        }
        fields.update(overrides)
        reply = self.stub.EnrollNode(agent_pb2.EnrollNodeRequest(**fields), timeout=30)
        self.api_key = reply.api_key
        self.pin(reply.ticket_verifier_key)
        return reply

    def pin(self, verifier_key: str) -> None:
        """Pin the broker's ticket key (`<name>+<hex key id>+<base64(0x01 || key)>`)."""
        key = parse_verifier_key(verifier_key)
        self.verifier = TicketVerifier(key.public_key_raw, key.key_id, key.name)

    def pull(self, max_tickets: int = 0) -> agent_pb2.PullTicketsResponse:
        return self.stub.PullTickets(
            agent_pb2.PullTicketsRequest(max_tickets=max_tickets),
            metadata=self._metadata(),
            timeout=30,
        )

    def open(self, envelope: bytes, now: int) -> Ticket:
        """Verify a ticket onboard, as the agent does."""
        assert self.verifier is not None
        return self.verifier.open(
            envelope, node=self.node, now=now, skew_seconds=60, already_run=lambda _: False
        )

    def read(self, envelope: bytes) -> Ticket:
        """A ticket verified under the pinned key, its claims not checked against a time."""
        assert self.verifier is not None
        return self.verifier.verified(envelope)

    def fetch(
        self, digest: str, offset: int = 0, max_bytes: int = 0
    ) -> agent_pb2.FetchBlobResponse:
        return self.stub.FetchBlob(
            agent_pb2.FetchBlobRequest(digest=digest, offset=offset, max_bytes=max_bytes),
            metadata=self._metadata(),
            timeout=30,
        )

    def open_result(self, request_id: str, data: bytes) -> int:
        reply = self.stub.OpenResult(
            agent_pb2.OpenResultRequest(
                request_id=request_id, size=len(data), sha256=hashlib.sha256(data).digest()
            ),
            metadata=self._metadata(),
            timeout=30,
        )
        return int(reply.next_offset)

    def put(self, request_id: str, offset: int, data: bytes) -> agent_pb2.PutResultChunkResponse:
        return self.stub.PutResultChunk(
            agent_pb2.PutResultChunkRequest(request_id=request_id, offset=offset, data=data),
            metadata=self._metadata(),
            timeout=30,
        )

    def upload(self, request_id: str, data: bytes) -> None:
        """Downlink a whole result, resuming where the broker says."""
        offset = self.open_result(request_id, data)
        while offset < len(data):
            chunk = data[offset : offset + RESULT_CHUNK_BYTES]
            offset = int(self.put(request_id, offset, chunk).next_offset)

    def report(self, receipt: bytes) -> agent_pb2.ReportReceiptResponse:
        return self.stub.ReportReceipt(
            agent_pb2.ReportReceiptRequest(receipt=receipt), metadata=self._metadata(), timeout=30
        )

    def heartbeat(
        self, refusals: tuple[agent_pb2.TicketRefusal, ...] = ()
    ) -> agent_pb2.HeartbeatResponse:
        return self.stub.Heartbeat(
            agent_pb2.HeartbeatRequest(refusals=list(refusals)),
            metadata=self._metadata(),
            timeout=30,
        )

    def receipt(
        self,
        ticket_envelope: bytes,
        ticket: Ticket,
        *,
        result: bytes | None = b"",
        fuel: int = 1_000_000,
        outcome: RunOutcome = RunOutcome.OK,
        key: Ed25519PrivateKey | None = None,
        **overrides: Any,
    ) -> bytes:
        """A receipt of a run of `ticket` that used `fuel` and made `result` (None: none),
        signed with this node's key (or `key`); `overrides` replace any claim."""
        data = result if result is not None else b""
        claims = Receipt(
            node=self.node,
            request_id=ticket.request_id,
            issued_at=ticket.end,
            ticket_sha256=hashlib.sha256(ticket_envelope).digest(),
            outcome=outcome,
            exit_code=0,
            fuel=fuel,
            cpu_core_seconds=cpu_core_seconds(fuel, self.rate),
            storage_mb_seconds=ticket.storage_mb * (ticket.end - ticket.start),
            bytes_downlinked=len(data),
            link_seconds=-(-(len(data) * 8) // (ticket.downlink_mbps * 10**6)),
            uplink_seconds=ticket.uplink_seconds,
            start=ticket.start,
            end=ticket.end,
            result_sha256=hashlib.sha256(data).digest() if result is not None else None,
            result_bytes=len(data),
            runtime=self.runtime,
        )
        claims = replace(claims, **overrides)
        return sign_receipt(claims, key or self.key, self.kid)


@dataclass
class AgentWorld:
    """A broker with a world, a tenant (acme) with a module pushed, and one enrolled agent."""

    server: ServerHandle
    clock: SimulatedClock
    agent: TestAgent
    workload: str
    channel: grpc.Channel

    @property
    def broker(self) -> Broker:
        return self.server.broker

    @property
    def others(self) -> list[str]:
        """The nodes other than the agent's, by NORAD id."""
        return [n.id for n in self.broker.constellation.nodes() if n.id != self.agent.node]

    def enroll(self, node: str, ground_link: str = "always") -> TestAgent:
        agent = TestAgent(self.channel, node, self.broker.config.origin)
        made = self.broker.agents.create_enrollment_token(SYSTEM, node, ground_link, 0)  # type: ignore[arg-type]
        agent.enroll(made.token)
        return agent

    def submit(self, key: str = "k", **changes: Any) -> StoredRequest:
        fields: dict[str, Any] = {"workload": self.workload, "node_ids": (self.agent.node,)}
        fields.update(changes)
        stored, _ = self.broker.requests.submit(tenant("acme"), replace(spec(), **fields), key)
        return stored

    def placed(self, key: str = "k", **changes: Any) -> tuple[StoredRequest, Placement]:
        """A new request of acme placed on the agent's node."""
        request = self.submit(key, **changes)
        report = self.broker.scheduling.run_cycle()
        assert request.id in report.placed, (report, self.stored(request.id).reason)
        stored = self.stored(request.id)
        assert stored.placement is not None
        return stored, stored.placement

    def stored(self, request_id: str) -> StoredRequest:
        found = self.broker.requests.stored(request_id)
        assert found is not None
        return found

    def pulled(self, key: str = "k", **changes: Any) -> tuple[StoredRequest, bytes, Ticket]:
        """A request placed on the agent's node and its ticket pulled at its uplink."""
        request, placement = self.placed(key, **changes)
        self.clock.set(at(placement.uplink.at))
        reply = self.agent.pull()
        (signed,) = [t for t in reply.tickets if t.request_id == request.id]
        ticket = self.agent.open(signed.envelope, placement.uplink.at)
        return request, signed.envelope, ticket

    def running(self, key: str = "k", **changes: Any) -> tuple[StoredRequest, bytes, Ticket]:
        """A request running on the agent's node (its ticket pulled, its start come)."""
        request, envelope, ticket = self.pulled(key, **changes)
        self.clock.set(at(ticket.start))
        assert request.id in self.broker.scheduling.advance().started
        assert self.stored(request.id).state is RequestState.RUNNING
        return self.stored(request.id), envelope, ticket

    def finish(self, ticket: Ticket) -> None:
        """The clock at the ticket's end (the run is over)."""
        self.clock.set(at(ticket.end))


@contextmanager
def agent_world(server: ServerHandle, clock: SimulatedClock) -> Iterator[AgentWorld]:
    broker = server.broker
    build_world(broker, satellites=6, hours=12)
    acme = add_tenant(broker, "acme")
    pushed = broker.blobs.push_workload(acme, module_bytes(), "")
    # The node that sees the ground most in the requests' window (6 h from the epoch).
    contacts = broker.constellation.contacts_between(EPOCH, EPOCH + timedelta(hours=6))
    node = max(
        (n.id for n in broker.constellation.nodes()),
        key=lambda n: (sum(1 for c in contacts if c.node == n), n),
    )
    with grpc.insecure_channel(server.target) as channel:
        world = AgentWorld(server, clock, TestAgent(channel, node, ""), pushed.digest, channel)
        world.agent = world.enroll(node)
        yield world
