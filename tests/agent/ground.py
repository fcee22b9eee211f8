"""A ground segment for the agent loop's tests: a BrokerLink in memory with real keys.

It signs real tickets with a real Ed25519 ticket key (orbitq.ledger.tickets), serves blobs
by digest, keeps downlinked results by offset, and opens every receipt with the node's real
key (orbitq.ledger.receipts): the agent's side of NodeAgentService without a server, so the
loop's edge cases (tampered, foreign, replayed tickets, missed windows, crashes) are set up
in a line each. The end-to-end tests run the same agent against the real broker.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp

from orbitq.clients.agent.link import LinkDownError
from orbitq.clients.errors import NotFoundError
from orbitq.ledger.note import key_id
from orbitq.ledger.receipts import Receipt, open_receipt
from orbitq.ledger.tickets import DownlinkWindow, Ticket, TicketVerifier, sign_ticket
from orbitq.v1 import agent_pb2

ISSUER = "orbitq.test/ledger"
NODE = "sat-1"
T0 = 1_764_979_200  # 2025-12-06T00:00:00Z


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass
class Ground:
    """What the broker knows and keeps; `up` = False makes every call LinkDownError."""

    ticket_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    node_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    up: bool = True
    pending: list[bytes] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    results: dict[str, bytearray] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    receipt_envelopes: list[bytes] = field(default_factory=list)
    refusals: list[agent_pb2.TicketRefusal] = field(default_factory=list)
    contacts: list[agent_pb2.ContactWindow] = field(default_factory=list)
    chunks: list[tuple[str, int, int]] = field(default_factory=list)
    heartbeats: int = 0
    pulls: int = 0
    # The broker's promise (PullTicketsResponse.next_pull_at), seconds; None: none given.
    next_pull_at: int | None = None

    @property
    def ticket_kid(self) -> bytes:
        return key_id(ISSUER, self.ticket_key.public_key().public_bytes_raw())

    def verifier(self) -> TicketVerifier:
        return TicketVerifier(
            self.ticket_key.public_key().public_bytes_raw(), self.ticket_kid, ISSUER
        )

    def blob(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        self.blobs[f"sha256:{digest.hex()}"] = data
        return digest

    def ticket(self, request_id: str, module: bytes, data: bytes | None, **claims: object) -> bytes:
        """Sign a ticket for NODE starting at T0 + 60 and hand it out at the next pull."""
        fields: dict[str, object] = {
            "issuer": ISSUER,
            "node": NODE,
            "request_id": request_id,
            "issued_at": T0,
            "not_before": T0 - 60,
            "expires": T0 + 600,
            "start": T0 + 60,
            "end": T0 + 360,
            "run_seconds": 60,
            "cpu_millicores": 1000,
            "storage_mb": 10,
            "output_bytes_max": 1 << 20,
            "fuel_max": 10**9,
            "downlink": (DownlinkWindow("station-a", T0 + 400, T0 + 500),),
            "workload_sha256": self.blob(module),
            "input_sha256": None if data is None else self.blob(data),
            "input_bytes": 0 if data is None else len(data),
            "downlink_mbps": 8,
            "uplink_seconds": 1,
        }
        fields.update(claims)
        envelope = sign_ticket(Ticket(**fields), self.ticket_key, self.ticket_kid)  # type: ignore[arg-type]
        self.pending.append(envelope)
        return envelope

    def contact(self, start: int, end: int, name: str = "c") -> None:
        window = agent_pb2.ContactWindow(id=name, station="station-a")
        window.start.FromSeconds(start)
        window.end.FromSeconds(end)
        self.contacts.append(window)

    # --- BrokerLink ---------------------------------------------------------------------------

    def _check(self) -> None:
        if not self.up:
            raise LinkDownError("the broker is out of reach")

    def pull_tickets(self, request: agent_pb2.PullTicketsRequest) -> agent_pb2.PullTicketsResponse:
        self._check()
        self.pulls += 1
        handed = [agent_pb2.SignedTicket(envelope=e) for e in self.pending]
        response = agent_pb2.PullTicketsResponse(tickets=handed, contacts=self.contacts)
        if self.next_pull_at is not None:
            response.next_pull_at.FromSeconds(self.next_pull_at)
        return response

    def fetch_blob(self, request: agent_pb2.FetchBlobRequest) -> agent_pb2.FetchBlobResponse:
        self._check()
        if request.digest not in self.blobs:
            raise NotFoundError(None, f"blob {request.digest} not found")  # type: ignore[arg-type]
        data = self.blobs[request.digest]
        piece = data[request.offset : request.offset + (request.max_bytes or 1 << 20)]
        return agent_pb2.FetchBlobResponse(data=piece, total_bytes=len(data))

    def open_result(self, request: agent_pb2.OpenResultRequest) -> agent_pb2.OpenResultResponse:
        self._check()
        stored = self.results.setdefault(request.request_id, bytearray())
        self.sizes[request.request_id] = request.size
        return agent_pb2.OpenResultResponse(next_offset=len(stored))

    def put_result_chunk(
        self, request: agent_pb2.PutResultChunkRequest
    ) -> agent_pb2.PutResultChunkResponse:
        self._check()
        stored = self.results[request.request_id]
        assert request.offset <= len(stored), "a gap"
        stored[request.offset :] = request.data
        self.chunks.append((request.request_id, request.offset, len(request.data)))
        complete = len(stored) == self.sizes[request.request_id]
        return agent_pb2.PutResultChunkResponse(next_offset=len(stored), complete=complete)

    def report_receipt(
        self, request: agent_pb2.ReportReceiptRequest
    ) -> agent_pb2.ReportReceiptResponse:
        self._check()
        public = self.node_key.public_key().public_bytes_raw()
        receipt = open_receipt(request.receipt, public, key_id(NODE, public))
        previous = self.receipts.get(receipt.request_id)
        assert previous is None or previous == receipt, "a second, different receipt"
        self.receipts[receipt.request_id] = receipt
        self.receipt_envelopes.append(bytes(request.receipt))
        digest = hashlib.sha256(request.receipt).digest()
        return agent_pb2.ReportReceiptResponse(receipt_digest=digest, entry_index=1)

    def heartbeat(self, request: agent_pb2.HeartbeatRequest) -> agent_pb2.HeartbeatResponse:
        self._check()
        self.heartbeats += 1
        self.refusals.extend(request.refusals)
        # A refused ticket is re-placed or failed by the broker: it is not handed out again.
        refused = {bytes(r.ticket_digest) for r in request.refusals}
        self.pending = [e for e in self.pending if hashlib.sha256(e).digest() not in refused]
        return agent_pb2.HeartbeatResponse(server_time=Timestamp(), contacts=self.contacts)


def tampered(envelope: bytes) -> bytes:
    """The envelope with one byte of its signature flipped."""
    return envelope[:-1] + bytes([envelope[-1] ^ 1])
