"""RequestService over gRPC (thin; rules in orbitq.services.requests).

Owns: converting wire messages to domain values and back (explanations and ETAs: rules in
orbitq.services.explaining; cancellation terms: orbitq.services.requests.terms) — timestamps
to whole seconds, rounded inwards (not_before up, deadline down), so the stored window is
never wider than the one asked for — the stream of WatchRequest (it ends when the client goes
away: gRPC's done-callback wakes the watch at once), and the blob and evidence calls (rules in
orbitq.services.blobs and orbitq.services.agents).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from orbitq.services.agents.service import Agents
from orbitq.services.auth import current_principal
from orbitq.services.blobs import digests
from orbitq.services.blobs.service import Blobs
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.explaining import Eta, Explainer, Explanation
from orbitq.services.requests import (
    QuoteResult,
    Requests,
    RequestSpec,
    RequestState,
    StoredRequest,
    Transition,
)
from orbitq.services.requests.terms import Terms
from orbitq.services.scheduler import Cost, Placement
from orbitq.services.servicers.convert import timestamp
from orbitq.v1 import common_pb2, request_pb2, request_pb2_grpc


def _at(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def spec_from_proto(message: request_pb2.RequestSpec) -> RequestSpec:
    not_before = 0
    if message.HasField("not_before"):
        not_before = message.not_before.seconds + (1 if message.not_before.nanos > 0 else 0)
        if not_before <= 0:
            raise InvalidArgumentError("not_before must be after 1970-01-01T00:00:00Z")
    deadline = 0
    if message.HasField("deadline"):
        deadline = message.deadline.seconds
        if deadline <= 0:
            raise InvalidArgumentError("deadline must be after 1970-01-01T00:00:00Z")
    return RequestSpec(
        name=message.name,
        workload=message.workload,
        cpu_millicores=message.cpu_millicores,
        run_seconds=message.run_seconds,
        storage_mb=message.storage_mb,
        input_mb=message.input_mb,
        output_mb=message.output_mb,
        not_before=not_before,
        deadline=deadline,
        priority=message.priority,
        node_labels=dict(message.node_labels),
        node_ids=tuple(message.node_ids),
        station_countries=tuple(message.station_countries),
        station_ids=tuple(message.station_ids),
        input=message.input,
    )


def spec_to_proto(spec: RequestSpec) -> request_pb2.RequestSpec:
    return request_pb2.RequestSpec(
        name=spec.name,
        workload=spec.workload,
        cpu_millicores=spec.cpu_millicores,
        run_seconds=spec.run_seconds,
        storage_mb=spec.storage_mb,
        input_mb=spec.input_mb,
        output_mb=spec.output_mb,
        not_before=_at(spec.not_before),
        deadline=_at(spec.deadline),
        priority=spec.priority,
        node_labels=dict(spec.node_labels),
        node_ids=list(spec.node_ids),
        station_countries=list(spec.station_countries),
        station_ids=list(spec.station_ids),
        input=spec.input,
    )


def amounts(cost: Cost) -> common_pb2.Amounts:
    return common_pb2.Amounts(cpu=cost.cpu, storage=cost.storage, link=cost.link)


def _state(state: RequestState | None) -> request_pb2.RequestState.ValueType:
    return request_pb2.RequestState.ValueType(int(state or 0))


def placement_to_proto(request: StoredRequest) -> request_pb2.Placement:
    """A stored request's placement with the contacts it uses."""
    assert request.placement is not None
    message = scheduled_to_proto(request.placement)
    message.contacts.extend(
        request_pb2.PlacementContact(
            id=c.id, node=c.node, station=c.station, start=_at(c.start), end=_at(c.end)
        )
        for c in request.contacts
    )
    return message


def request_to_proto(request: StoredRequest) -> request_pb2.ServiceRequest:
    message = request_pb2.ServiceRequest(
        id=request.id,
        tenant=request.tenant,
        spec=spec_to_proto(request.spec),
        state=_state(request.state),
        cost=request_pb2.Cost(amounts=amounts(request.reserved)),
        reason=request.reason,
        placement_reasons=[
            request_pb2.PlacementReason(plugin=r.plugin, reason=r.reason, nodes=r.nodes)
            for r in request.placement_reasons
        ],
        idempotency_key=request.idempotency_key,
        submitted_at=timestamp(request.submitted_ns),
        updated_at=timestamp(request.updated_ns),
        sequence=request.sequence,
        settled=amounts(request.settled),
        receipt_digest=request.receipt_digest or b"",
        fault=request_pb2.Fault.ValueType(int(request.fault)),
        outcome=request_pb2.RunOutcome.ValueType(request.outcome),
        result=digests.of_hex(request.result_digest) if request.result_digest else "",
        result_bytes=request.result_bytes,
    )
    if request.placement is not None:
        message.placement.CopyFrom(placement_to_proto(request))
    if request.ended_ns is not None:
        message.ended_at.CopyFrom(timestamp(request.ended_ns))
    return message


def transition_to_proto(transition: Transition) -> request_pb2.RequestTransition:
    return request_pb2.RequestTransition(
        sequence=transition.sequence,
        from_state=_state(transition.from_state),
        to_state=_state(transition.to_state),
        at=timestamp(transition.at_ns),
        reason=transition.reason,
    )


def _quote_to_proto(
    result: QuoteResult, explanation: Explanation | None
) -> request_pb2.QuoteResponse:
    message = request_pb2.QuoteResponse(
        cost=request_pb2.Cost(amounts=amounts(result.maximum), explanation=result.explanation),
        minimum=request_pb2.Cost(amounts=amounts(result.minimum)),
    )
    if explanation is not None:
        message.eta.CopyFrom(eta_to_proto(explanation.eta, explanation.now))
        message.terms.CopyFrom(terms_to_proto(explanation.terms, explanation.now))
    return message


def scheduled_to_proto(placement: Placement) -> request_pb2.Placement:
    """A scheduler placement (planned or computed), without its contact list."""
    uplink = placement.uplink
    return request_pb2.Placement(
        node=placement.node,
        start=_at(placement.start),
        end=_at(placement.end),
        uplink_contact_id=uplink.contact,
        uplink_station=uplink.station,
        uplink_at=_at(uplink.at),
        uplink_end=_at(uplink.end),
        downlink=[
            request_pb2.DownlinkSegment(
                contact_id=s.contact, station=s.station, start=_at(s.start), end=_at(s.end)
            )
            for s in placement.downlink
        ],
    )


def eta_to_proto(eta: Eta, now_s: int) -> request_pb2.Eta:
    message = request_pb2.Eta(
        fits=eta.placement is not None,
        planned=eta.planned,
        reasons=[
            request_pb2.PlacementReason(plugin=r.plugin, reason=r.reason, nodes=r.nodes)
            for r in eta.reasons
        ],
        summary=eta.summary,
        later_deadline_seconds=eta.later_deadline_seconds or 0,
        deadline_searched_seconds=eta.searched_seconds,
        allow_stations=list(eta.allow_stations),
        short=amounts(eta.short),
        advice=eta.advice,
        nodes=eta.nodes,
        contacts=eta.contacts,
        placements=eta.placements,
        probes=eta.probes,
        truncated=eta.truncated,
        computed_at=_at(now_s),
    )
    if eta.placement is not None:
        message.placement.CopyFrom(scheduled_to_proto(eta.placement))
    return message


def terms_to_proto(terms: Terms, now_s: int) -> request_pb2.CancellationTerms:
    message = request_pb2.CancellationTerms(
        cutoff_seconds=terms.broker.cutoff_seconds,
        fee_percent=terms.broker.fee_percent,
        fee=amounts(terms.fee),
        due_now=amounts(terms.due(now_s)),
        summary=terms.summary(now_s),
    )
    if terms.cutoff is not None:
        message.cutoff.CopyFrom(_at(terms.cutoff))
    return message


def _states(values: list[int]) -> frozenset[RequestState]:
    states = set()
    for value in values:
        try:
            states.add(RequestState(value))
        except ValueError:
            raise InvalidArgumentError(f"states: unknown request state {value}") from None
    return frozenset(states)


class RequestServicer(request_pb2_grpc.RequestServiceServicer):
    def __init__(
        self, requests: Requests, blobs: Blobs, agents: Agents, explainer: Explainer
    ) -> None:
        self._requests = requests
        self._blobs = blobs
        self._agents = agents
        self._explainer = explainer

    def Quote(
        self, request: request_pb2.QuoteRequest, context: grpc.ServicerContext
    ) -> request_pb2.QuoteResponse:
        result, explanation = self._explainer.quote(
            current_principal(), spec_from_proto(request.spec), request.tenant, eta=request.eta
        )
        return _quote_to_proto(result, explanation)

    def ExplainRequest(
        self, request: request_pb2.ExplainRequestRequest, context: grpc.ServicerContext
    ) -> request_pb2.ExplainRequestResponse:
        explanation = self._explainer.explain(current_principal(), request.id)
        assert explanation.request is not None
        return request_pb2.ExplainRequestResponse(
            request=request_to_proto(explanation.request),
            eta=eta_to_proto(explanation.eta, explanation.now),
            terms=terms_to_proto(explanation.terms, explanation.now),
        )

    def Submit(
        self, request: request_pb2.SubmitRequest, context: grpc.ServicerContext
    ) -> request_pb2.SubmitResponse:
        stored, created = self._requests.submit(
            current_principal(),
            spec_from_proto(request.spec),
            request.idempotency_key,
            request.tenant,
        )
        return request_pb2.SubmitResponse(request=request_to_proto(stored), created=created)

    def GetRequest(
        self, request: request_pb2.GetRequestRequest, context: grpc.ServicerContext
    ) -> request_pb2.GetRequestResponse:
        stored = self._requests.get(current_principal(), request.id)
        return request_pb2.GetRequestResponse(request=request_to_proto(stored))

    def ListRequests(
        self, request: request_pb2.ListRequestsRequest, context: grpc.ServicerContext
    ) -> request_pb2.ListRequestsResponse:
        found, token = self._requests.list_requests(
            current_principal(),
            request.tenant,
            _states(list(request.states)),
            request.page_size,
            request.page_token,
        )
        return request_pb2.ListRequestsResponse(
            requests=[request_to_proto(r) for r in found], next_page_token=token
        )

    def CancelRequest(
        self, request: request_pb2.CancelRequestRequest, context: grpc.ServicerContext
    ) -> request_pb2.CancelRequestResponse:
        stored = self._requests.cancel(current_principal(), request.id)
        now_s = self._requests.now_s()
        return request_pb2.CancelRequestResponse(
            request=request_to_proto(stored),
            charged=amounts(stored.settled),
            terms=terms_to_proto(self._requests.terms_of(stored), now_s),
        )

    def WatchRequest(
        self, request: request_pb2.WatchRequestRequest, context: grpc.ServicerContext
    ) -> Iterator[request_pb2.WatchRequestResponse]:
        principal = current_principal()
        stream = self._requests.watch(
            principal, request.id, request.after_sequence, context.is_active
        )
        context.add_callback(self._requests.wake_watchers)
        for transition, stored in stream:
            yield request_pb2.WatchRequestResponse(
                transition=transition_to_proto(transition), request=request_to_proto(stored)
            )

    def PushWorkload(
        self, request: request_pb2.PushWorkloadRequest, context: grpc.ServicerContext
    ) -> request_pb2.PushWorkloadResponse:
        pushed = self._blobs.push_workload(current_principal(), request.module, request.tenant)
        return request_pb2.PushWorkloadResponse(
            digest=pushed.digest,
            size=pushed.size,
            created=pushed.created,
            imports=list(pushed.imports),
        )

    def PushInput(
        self, request: request_pb2.PushInputRequest, context: grpc.ServicerContext
    ) -> request_pb2.PushInputResponse:
        pushed = self._blobs.push_input(current_principal(), request.data, request.tenant)
        return request_pb2.PushInputResponse(
            digest=pushed.digest, size=pushed.size, created=pushed.created
        )

    def GetBlob(
        self, request: request_pb2.GetBlobRequest, context: grpc.ServicerContext
    ) -> request_pb2.GetBlobResponse:
        chunk = self._blobs.get(
            current_principal(), request.digest, request.offset, request.max_bytes
        )
        return request_pb2.GetBlobResponse(data=chunk.data, total_bytes=chunk.total_bytes)

    def GetEvidence(
        self, request: request_pb2.GetEvidenceRequest, context: grpc.ServicerContext
    ) -> request_pb2.GetEvidenceResponse:
        evidence = self._agents.evidence(current_principal(), request.id)
        receipt = evidence.receipt
        return request_pb2.GetEvidenceResponse(
            request=request_to_proto(evidence.request),
            ticket=evidence.ticket,
            receipt=receipt.envelope if receipt is not None else b"",
            receipt_entry_index=evidence.receipt_entry_index,
            node_key_entry_index=receipt.key_entry_index if receipt is not None else 0,
            node_public_key=receipt.node_public_key if receipt is not None else b"",
            settlement_transfer_ids=evidence.settlement_transfer_ids,
        )
