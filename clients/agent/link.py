"""The agent's view of the broker: the NodeAgentService calls, as a Protocol, and its gRPC
implementation over the generated stubs with the node's credential.

Owns: `BrokerLink` (what the loop needs; the simulator implements it in-process), `GrpcLink`
(a timeout on every call; every NodeAgentService call is idempotent by design, so every call
is retried on a transient status with the SDK's backoff), `enroll` (EnrollNode needs no API
key: the enrollment token is the credential), and `LinkDownError`: what a call outside the node's
contact windows (FAILED_PRECONDITION naming the next contact) or an unreachable broker means
to the loop: expected, not an error; try again at the next contact.

Does not own: when to call (orbitq.clients.agent.agent), the status → exception table
(orbitq.clients._transport.translate, used as is).
"""

from __future__ import annotations

from typing import Protocol

import grpc

from orbitq.clients import _flavour
from orbitq.clients._sync_transport import Transport
from orbitq.clients._transport import RetryConfig, Settings, TLSConfig, translate
from orbitq.clients.agent.errors import AgentError
from orbitq.clients.errors import (
    BrokerCallError,
    DeadlineExceededError,
    FailedPreconditionError,
    UnavailableError,
)
from orbitq.v1 import agent_pb2, agent_pb2_grpc

TIMEOUT_SECONDS_DEFAULT = 10.0
# Over a pass a few retries are worth it; the next step tries again anyway.
RETRY = RetryConfig(attempts=3, initial_backoff_seconds=0.2, max_backoff_seconds=2.0)


class LinkDownError(AgentError):
    """The broker cannot be talked to now: outside a contact window, or unreachable."""


class BrokerLink(Protocol):
    """The NodeAgentService calls the loop makes (all but EnrollNode). Each raises LinkDownError
    when the link is down, and the SDK's BrokerCallError subclasses for anything else."""

    def pull_tickets(
        self, request: agent_pb2.PullTicketsRequest
    ) -> agent_pb2.PullTicketsResponse: ...

    def fetch_blob(self, request: agent_pb2.FetchBlobRequest) -> agent_pb2.FetchBlobResponse: ...

    def open_result(self, request: agent_pb2.OpenResultRequest) -> agent_pb2.OpenResultResponse: ...

    def put_result_chunk(
        self, request: agent_pb2.PutResultChunkRequest
    ) -> agent_pb2.PutResultChunkResponse: ...

    def report_receipt(
        self, request: agent_pb2.ReportReceiptRequest
    ) -> agent_pb2.ReportReceiptResponse: ...

    def heartbeat(self, request: agent_pb2.HeartbeatRequest) -> agent_pb2.HeartbeatResponse: ...


def is_link_down(error: BrokerCallError) -> bool:
    """A refusal that only says "not now": outside the contact windows, or unreachable."""
    if isinstance(error, UnavailableError | DeadlineExceededError):
        return True
    return isinstance(error, FailedPreconditionError) and "contact" in error.details


class TypedLink:
    """The BrokerLink methods over one untyped `_call(method, request)`: a link (over gRPC, or
    in-process in the simulator) implements only `_call`."""

    def _call(self, method: str, request: object) -> object:
        raise NotImplementedError

    def pull_tickets(self, request: agent_pb2.PullTicketsRequest) -> agent_pb2.PullTicketsResponse:
        response = self._call("PullTickets", request)
        assert isinstance(response, agent_pb2.PullTicketsResponse)
        return response

    def fetch_blob(self, request: agent_pb2.FetchBlobRequest) -> agent_pb2.FetchBlobResponse:
        response = self._call("FetchBlob", request)
        assert isinstance(response, agent_pb2.FetchBlobResponse)
        return response

    def open_result(self, request: agent_pb2.OpenResultRequest) -> agent_pb2.OpenResultResponse:
        response = self._call("OpenResult", request)
        assert isinstance(response, agent_pb2.OpenResultResponse)
        return response

    def put_result_chunk(
        self, request: agent_pb2.PutResultChunkRequest
    ) -> agent_pb2.PutResultChunkResponse:
        response = self._call("PutResultChunk", request)
        assert isinstance(response, agent_pb2.PutResultChunkResponse)
        return response

    def report_receipt(
        self, request: agent_pb2.ReportReceiptRequest
    ) -> agent_pb2.ReportReceiptResponse:
        response = self._call("ReportReceipt", request)
        assert isinstance(response, agent_pb2.ReportReceiptResponse)
        return response

    def heartbeat(self, request: agent_pb2.HeartbeatRequest) -> agent_pb2.HeartbeatResponse:
        response = self._call("Heartbeat", request)
        assert isinstance(response, agent_pb2.HeartbeatResponse)
        return response


class GrpcLink(TypedLink):
    """BrokerLink over gRPC with the node's credential (an API key of role node)."""

    def __init__(
        self,
        target: str,
        credential: str,
        *,
        tls: TLSConfig | None = None,
        timeout: float = TIMEOUT_SECONDS_DEFAULT,
    ) -> None:
        self._transport = Transport(Settings(target, credential, timeout, tls, RETRY))

    def close(self) -> None:
        self._transport.close()

    def _call(self, method: str, request: object) -> object:
        try:
            return self._transport.unary("agent", method, request, idempotent=True)
        except BrokerCallError as error:
            if is_link_down(error):
                raise LinkDownError(f"{method}: {error.details}") from None
            raise


def enroll(
    target: str,
    request: agent_pb2.EnrollNodeRequest,
    *,
    tls: TLSConfig | None = None,
    timeout: float = TIMEOUT_SECONDS_DEFAULT,
) -> agent_pb2.EnrollNodeResponse:
    """EnrollNode, with no API key (the token is the credential). Not retried: a retry with
    the same token and key re-issues the credential, but the caller decides to retry."""
    settings = Settings(target, "", timeout, tls)
    channel = _flavour.open_channel(settings)
    try:
        stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
        response = stub.EnrollNode(request, timeout=timeout)
    except grpc.RpcError as error:
        raise translate(error) from None
    finally:
        _flavour.close_channel(channel)
    assert isinstance(response, agent_pb2.EnrollNodeResponse)
    return response
