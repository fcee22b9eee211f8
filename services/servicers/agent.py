"""NodeAgentService over gRPC (thin; rules, and who may call what, in orbitq.services.agents).

Owns: the conversions between wire messages and the agents' values, and the shapes a client
controls: a heartbeat carries at most REFUSALS_PER_HEARTBEAT_MAX refusals (each with a 32-byte
ticket digest and a detail of at most DETAIL_CHARS_MAX characters) and names at most
RUNNING_PER_HEARTBEAT_MAX running requests. EnrollNode is the one method called without an
API key (the auth interceptor lets it through; the enrollment token is its credential).
"""

from __future__ import annotations

import threading
from typing import cast

import grpc

from orbitq.services.agents.enrollment import EnrollRequest
from orbitq.services.agents.health import (
    DETAIL_CHARS_MAX,
    REFUSALS_PER_HEARTBEAT_MAX,
    RUNNING_PER_HEARTBEAT_MAX,
    TicketRefusal,
)
from orbitq.services.agents.service import Agents
from orbitq.services.auth import current_principal
from orbitq.services.clock import NANOS_PER_SECOND
from orbitq.services.constellation import StoredContact
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.servicers.constellation import (
    PROTO_GROUND_LINK,
    PROTO_NODE_STATE,
    node_to_proto,
)
from orbitq.services.servicers.convert import timestamp
from orbitq.services.servicers.requests import request_to_proto
from orbitq.v1 import agent_pb2, agent_pb2_grpc

SHA256_BYTES = 32
# Contact windows kept converted (a plan larger than this drops them all and starts over).
CONTACTS_CONVERTED_MAX = 100_000


class ContactsToProto:
    """The contacts' wire form, each converted once and kept by its value: PullTickets and
    Heartbeat return a node's upcoming contacts on every call, mostly the same ones (the
    conversion, two Timestamps per window, was 0.2 ms of such a call in the sim's profile).
    Keyed by the whole StoredContact, so a contact whose times or station changed is a new
    entry: what a call returns is what converting it afresh gives."""

    def __init__(self) -> None:
        self._converted: dict[StoredContact, agent_pb2.ContactWindow] = {}
        self._lock = threading.Lock()

    def __call__(self, contacts: list[StoredContact]) -> list[agent_pb2.ContactWindow]:
        converted = self._converted
        found = [converted.get(c) for c in contacts]
        if all(m is not None for m in found):
            return cast(list[agent_pb2.ContactWindow], found)
        messages = [
            m if m is not None else contacts_to_proto([c])[0]
            for c, m in zip(contacts, found, strict=True)
        ]
        with self._lock:
            if len(self._converted) + len(contacts) > CONTACTS_CONVERTED_MAX:
                self._converted = {}
            self._converted.update(zip(contacts, messages, strict=True))
        return messages


def contacts_to_proto(contacts: list[StoredContact]) -> list[agent_pb2.ContactWindow]:
    return [
        agent_pb2.ContactWindow(
            id=c.id, station=c.station, start=timestamp(c.aos_ns), end=timestamp(c.los_ns)
        )
        for c in contacts
    ]


def refusals_from_proto(messages: list[agent_pb2.TicketRefusal]) -> list[TicketRefusal]:
    if len(messages) > REFUSALS_PER_HEARTBEAT_MAX:
        raise InvalidArgumentError(
            f"refusals has {len(messages)} items; at most {REFUSALS_PER_HEARTBEAT_MAX} a"
            " heartbeat (send the rest with the next)"
        )
    refusals = []
    for index, message in enumerate(messages):
        if len(message.ticket_digest) != SHA256_BYTES:
            raise InvalidArgumentError(
                f"refusals[{index}].ticket_digest must be {SHA256_BYTES} bytes,"
                f" got {len(message.ticket_digest)}"
            )
        if len(message.detail) > DETAIL_CHARS_MAX:
            raise InvalidArgumentError(
                f"refusals[{index}].detail is {len(message.detail):,} characters; at most"
                f" {DETAIL_CHARS_MAX}"
            )
        at = message.at.seconds * NANOS_PER_SECOND + message.at.nanos
        refusals.append(
            TicketRefusal(
                message.request_id, message.ticket_digest, message.reason, message.detail, at
            )
        )
    return refusals


class NodeAgentServicer(agent_pb2_grpc.NodeAgentServiceServicer):
    def __init__(self, agents: Agents) -> None:
        self._agents = agents
        self._contacts_to_proto = ContactsToProto()

    def EnrollNode(
        self, request: agent_pb2.EnrollNodeRequest, context: grpc.ServicerContext
    ) -> agent_pb2.EnrollNodeResponse:
        enrolled = self._agents.enroll(
            EnrollRequest(
                node=request.node,
                public_key=request.public_key,
                token=request.enrollment_token,
                fuel_per_core_second=request.fuel_per_core_second,
                runtime=request.runtime,
            )
        )
        signer = self._agents.signer
        return agent_pb2.EnrollNodeResponse(
            ticket_verifier_key=signer.verifier_key(),
            issuer=signer.issuer,
            api_key=enrolled.api_key,
            api_key_id=enrolled.api_key_id,
            ground_link=PROTO_GROUND_LINK[enrolled.ground_link],
            node=node_to_proto(enrolled.node),
            entry_index=enrolled.key_entry_index,
        )

    def PullTickets(
        self, request: agent_pb2.PullTicketsRequest, context: grpc.ServicerContext
    ) -> agent_pb2.PullTicketsResponse:
        pulled = self._agents.pull_tickets(current_principal(), request.max_tickets)
        response = agent_pb2.PullTicketsResponse(
            tickets=[
                agent_pb2.SignedTicket(request_id=t.request_id, envelope=t.envelope)
                for t in pulled.tickets
            ],
            contacts=self._contacts_to_proto(pulled.contacts),
            server_time=timestamp(pulled.now_ns),
        )
        if pulled.next_pull_ns is not None:
            response.next_pull_at.CopyFrom(timestamp(pulled.next_pull_ns))
        return response

    def FetchBlob(
        self, request: agent_pb2.FetchBlobRequest, context: grpc.ServicerContext
    ) -> agent_pb2.FetchBlobResponse:
        chunk = self._agents.fetch_blob(
            current_principal(), request.digest, request.offset, request.max_bytes
        )
        return agent_pb2.FetchBlobResponse(data=chunk.data, total_bytes=chunk.total_bytes)

    def OpenResult(
        self, request: agent_pb2.OpenResultRequest, context: grpc.ServicerContext
    ) -> agent_pb2.OpenResultResponse:
        offset = self._agents.open_result(
            current_principal(), request.request_id, request.size, request.sha256
        )
        return agent_pb2.OpenResultResponse(next_offset=offset)

    def PutResultChunk(
        self, request: agent_pb2.PutResultChunkRequest, context: grpc.ServicerContext
    ) -> agent_pb2.PutResultChunkResponse:
        offset, complete = self._agents.put_result_chunk(
            current_principal(), request.request_id, request.offset, request.data
        )
        return agent_pb2.PutResultChunkResponse(next_offset=offset, complete=complete)

    def ReportReceipt(
        self, request: agent_pb2.ReportReceiptRequest, context: grpc.ServicerContext
    ) -> agent_pb2.ReportReceiptResponse:
        settled = self._agents.report_receipt(current_principal(), request.receipt)
        return agent_pb2.ReportReceiptResponse(
            request=request_to_proto(settled.request),
            receipt_digest=settled.digest,
            entry_index=settled.entry_index,
        )

    def Heartbeat(
        self, request: agent_pb2.HeartbeatRequest, context: grpc.ServicerContext
    ) -> agent_pb2.HeartbeatResponse:
        if len(request.running) > RUNNING_PER_HEARTBEAT_MAX:
            raise InvalidArgumentError(
                f"running names {len(request.running):,} requests; at most"
                f" {RUNNING_PER_HEARTBEAT_MAX:,}"
            )
        refusals = refusals_from_proto(list(request.refusals))
        beat = self._agents.heartbeat(current_principal(), refusals)
        return agent_pb2.HeartbeatResponse(
            server_time=timestamp(beat.now_ns),
            contacts=self._contacts_to_proto(beat.contacts),
            state=PROTO_NODE_STATE[beat.state],
        )
