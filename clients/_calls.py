"""Every SDK call defined once: which RPC, the request built from Python arguments, how the
response is parsed, and whether it is safe to retry. The sync and async clients only run them.

Owns: argument checking that can be done client-side (amount signs, id formats) and making
calls idempotent before the first attempt (ids are generated here, once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from orbitq.clients.errors import BrokerCallError, BrokerIntegrityError, FailedPreconditionError
from orbitq.clients.ids import IdLike, format_id, id_bytes, new_id
from orbitq.clients.models import (
    Account,
    Amounts,
    ApiKey,
    Budget,
    Cancellation,
    CancellationTerms,
    Contact,
    ContactPlanReport,
    EnrollmentToken,
    Eta,
    Evidence,
    Explanation,
    ImportReport,
    IssuedApiKey,
    Node,
    PublicKey,
    PushedBlob,
    Quote,
    RequestSpec,
    ServiceRequest,
    Station,
    Submitted,
    Tenant,
    TransferOutcome,
    TransferRecord,
    TransferSpec,
    Transition,
    UpsertedStation,
    UsageRow,
    code_value,
    grouping_value,
    kind_value,
    node_state_value,
    period_value,
    request_state_value,
)
from orbitq.ledger.errors import LedgerIntegrityError
from orbitq.ledger.note import key_id
from orbitq.ledger.receipts import open_receipt
from orbitq.v1 import admin_pb2, common_pb2, constellation_pb2, ledger_pb2, quota_pb2, request_pb2

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    service: str
    method: str
    request: Any
    parse: Callable[[Any], T]
    idempotent: bool


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


_ROLES = {
    "operator": common_pb2.ROLE_OPERATOR,
    "tenant": common_pb2.ROLE_TENANT,
    "node": common_pb2.ROLE_NODE,
}


def _amounts(cpu: int, storage: int, link: int) -> common_pb2.Amounts:
    for name, value in (("cpu", cpu), ("storage", storage), ("link", link)):
        if value < 0:
            raise ValueError(f"{name} amount {value} is negative")
    return common_pb2.Amounts(cpu=cpu, storage=storage, link=link)


def create_tenant(name: str, display_name: str) -> Call[Tenant]:
    return Call(
        "admin",
        "CreateTenant",
        admin_pb2.CreateTenantRequest(name=name, display_name=display_name),
        lambda response: Tenant.from_proto(response.tenant),
        idempotent=False,
    )


def list_tenants(page_size: int, page_token: str) -> Call[Page[Tenant]]:
    return Call(
        "admin",
        "ListTenants",
        admin_pb2.ListTenantsRequest(page_size=page_size, page_token=page_token),
        lambda response: Page(
            [Tenant.from_proto(t) for t in response.tenants], response.next_page_token
        ),
        idempotent=True,
    )


def issue_api_key(role: str, tenant: str, node: str, label: str) -> Call[IssuedApiKey]:
    if role not in _ROLES:
        raise ValueError(f"role {role!r}: use operator, tenant or node")
    return Call(
        "admin",
        "IssueApiKey",
        admin_pb2.IssueApiKeyRequest(role=_ROLES[role], tenant=tenant, node=node, label=label),
        lambda response: IssuedApiKey(ApiKey.from_proto(response.key), response.api_key),
        idempotent=False,
    )


def revoke_api_key(key_id: str) -> Call[ApiKey]:
    return Call(
        "admin",
        "RevokeApiKey",
        admin_pb2.RevokeApiKeyRequest(key_id=key_id),
        lambda response: ApiKey.from_proto(response.key),
        idempotent=True,
    )


def _outcomes(response: Any) -> list[TransferOutcome]:
    return [TransferOutcome.from_proto(outcome) for outcome in response.outcomes]


def mint(
    tenant: str, cpu: int, storage: int, link: int, id: IdLike | None
) -> Call[list[TransferOutcome]]:
    request = quota_pb2.MintRequest(
        tenant=tenant, amounts=_amounts(cpu, storage, link), id=id_bytes(id or new_id())
    )
    return Call("quota", "Mint", request, _outcomes, idempotent=True)


def balances(tenant: str, system: bool, at_timestamp_ns: int) -> Call[list[Account]]:
    return Call(
        "quota",
        "GetBalances",
        quota_pb2.GetBalancesRequest(tenant=tenant, system=system, at_timestamp_ns=at_timestamp_ns),
        lambda response: [Account.from_proto(a) for a in response.accounts],
        idempotent=True,
    )


def transfer(
    to_tenant: str, cpu: int, storage: int, link: int, from_tenant: str, id: IdLike | None
) -> Call[list[TransferOutcome]]:
    request = quota_pb2.TransferRequest(
        from_tenant=from_tenant,
        to_tenant=to_tenant,
        amounts=_amounts(cpu, storage, link),
        id=id_bytes(id or new_id()),
    )
    return Call("quota", "Transfer", request, _outcomes, idempotent=True)


def grant_budget(
    tenant: str,
    cpu: int,
    storage: int,
    link: int,
    period: str,
    rollover_percent: int,
    replace: bool,
) -> Call[list[Budget]]:
    if not 0 <= rollover_percent <= 100:
        raise ValueError(f"rollover_percent {rollover_percent} is outside 0-100")
    request = quota_pb2.GrantBudgetRequest(
        tenant=tenant,
        amounts=_amounts(cpu, storage, link),
        period=period_value(period),  # type: ignore[arg-type]
        rollover_percent=rollover_percent,
        replace=replace,
    )
    # Safe to retry: the same terms again return the existing budgets.
    return Call(
        "quota",
        "GrantBudget",
        request,
        lambda response: [Budget.from_proto(b) for b in response.budgets],
        idempotent=True,
    )


def list_budgets(tenant: str) -> Call[list[Budget]]:
    return Call(
        "quota",
        "ListBudgets",
        quota_pb2.ListBudgetsRequest(tenant=tenant),
        lambda response: [Budget.from_proto(b) for b in response.budgets],
        idempotent=True,
    )


def usage_report(tenant: str, since_ns: int, until_ns: int, by: str) -> Call[list[UsageRow]]:
    request = quota_pb2.GetUsageReportRequest(
        tenant=tenant,
        since_ns=since_ns,
        until_ns=until_ns,
        by=grouping_value(by),  # type: ignore[arg-type]
    )
    return Call(
        "quota",
        "GetUsageReport",
        request,
        lambda response: [UsageRow.from_proto(r) for r in response.rows],
        idempotent=True,
    )


def list_transfers(
    tenant: str,
    account_id: int,
    kind: str,
    code: str,
    since_ns: int,
    until_ns: int,
    page_size: int,
    page_token: str,
) -> Call[Page[TransferRecord]]:
    request = quota_pb2.ListTransfersRequest(
        tenant=tenant,
        account_id=account_id,
        kind=kind_value(kind) if kind else 0,  # type: ignore[arg-type]
        code=code_value(code) if code else 0,  # type: ignore[arg-type]
        since_ns=since_ns,
        until_ns=until_ns,
        page_size=page_size,
        page_token=page_token,
    )
    return Call(
        "quota",
        "ListTransfers",
        request,
        lambda response: Page(
            [TransferRecord.from_proto(t) for t in response.transfers], response.next_page_token
        ),
        idempotent=True,
    )


def create_transfers(specs: Sequence[TransferSpec]) -> Call[list[TransferOutcome]]:
    messages = []
    for spec in specs:
        messages.append(
            quota_pb2.Transfer(
                id=id_bytes(spec.id if spec.id is not None else new_id()),
                debit_account_id=spec.debit_account_id,
                credit_account_id=spec.credit_account_id,
                amount=spec.amount,
                pending_id=id_bytes(spec.pending_id) if spec.pending_id else b"",
                user_data=spec.user_data,
                kind=kind_value(spec.kind) if spec.kind else 0,  # type: ignore[arg-type]
                code=code_value(spec.code) if spec.code else 0,  # type: ignore[arg-type]
                flags=quota_pb2.TransferFlags(
                    linked=spec.linked,
                    pending=spec.pending,
                    post_pending=spec.post_pending,
                    void_pending=spec.void_pending,
                ),
                timeout_seconds=spec.timeout_seconds,
            )
        )
    request = quota_pb2.CreateTransfersRequest(transfers=messages)
    return Call("quota", "CreateTransfers", request, _outcomes, idempotent=True)


# -- the signed ledger: raw responses, verified by orbitq.clients._verify ----------------------


def _same(response: T) -> T:
    return response


def get_checkpoint(fresh: bool) -> Call[ledger_pb2.GetCheckpointResponse]:
    request = ledger_pb2.GetCheckpointRequest(fresh=fresh)
    return Call("ledger", "GetCheckpoint", request, _same, idempotent=True)


def get_entries(start: int, end: int, page_size: int) -> Call[ledger_pb2.GetEntriesResponse]:
    if start < 0 or end < 0:
        raise ValueError(f"entry indices are >= 0, got start={start}, end={end}")
    request = ledger_pb2.GetEntriesRequest(start=start, end=end, page_size=page_size)
    return Call("ledger", "GetEntries", request, _same, idempotent=True)


def get_inclusion_proof(
    index: int | None, transfer_id: IdLike | None, tree_size: int
) -> Call[ledger_pb2.GetInclusionProofResponse]:
    if (index is None) == (transfer_id is None):
        raise ValueError("prove either an entry index or a transfer id")
    if index is not None:
        if index < 0:
            raise ValueError(f"entry index {index} is negative")
        request = ledger_pb2.GetInclusionProofRequest(index=index, tree_size=tree_size)
    else:
        assert transfer_id is not None
        request = ledger_pb2.GetInclusionProofRequest(
            transfer_id=id_bytes(transfer_id), tree_size=tree_size
        )
    return Call("ledger", "GetInclusionProof", request, _same, idempotent=True)


def get_consistency_proof(
    from_size: int, to_size: int
) -> Call[ledger_pb2.GetConsistencyProofResponse]:
    request = ledger_pb2.GetConsistencyProofRequest(from_size=from_size, to_size=to_size)
    return Call("ledger", "GetConsistencyProof", request, _same, idempotent=True)


def get_public_key() -> Call[PublicKey]:
    return Call(
        "ledger",
        "GetPublicKey",
        ledger_pb2.GetPublicKeyRequest(),
        lambda response: PublicKey(response.verifier_key, response.origin, response.public_key),
        idempotent=True,
    )


# -- the constellation: every call is an upsert or a read, so each is safe to retry -------------

_ELEMENT_FORMATS = {
    "auto": constellation_pb2.ELEMENT_FORMAT_AUTO,
    "tle": constellation_pb2.ELEMENT_FORMAT_TLE,
    "omm-csv": constellation_pb2.ELEMENT_FORMAT_OMM_CSV,
    "omm-json": constellation_pb2.ELEMENT_FORMAT_OMM_JSON,
}


def _timestamp(value: datetime, name: str) -> Timestamp:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime (e.g. tzinfo=UTC), got a naive one")
    message = Timestamp()
    message.FromDatetime(value)
    return message


def import_nodes(
    text: str,
    fmt: str,
    capacity: tuple[int, int, int, int],
    labels: Mapping[str, str],
    skip_bad: bool,
    capacities_csv: str,
) -> Call[ImportReport]:
    if fmt not in _ELEMENT_FORMATS:
        raise ValueError(f"fmt {fmt!r}: use one of {', '.join(_ELEMENT_FORMATS)}")
    for name, value in zip(
        ("cpu_millicores", "storage_mb", "downlink_mbps", "uplink_mbps"), capacity, strict=True
    ):
        if value < 0:
            raise ValueError(f"{name} {value} is negative")
    cpu, storage, downlink, uplink = capacity
    request = constellation_pb2.ImportNodesRequest(
        text=text,
        format=_ELEMENT_FORMATS[fmt],
        default_capacity=constellation_pb2.NodeCapacity(
            cpu_millicores=cpu, storage_mb=storage, downlink_mbps=downlink, uplink_mbps=uplink
        ),
        labels=dict(labels),
        skip_bad=skip_bad,
        capacities_csv=capacities_csv,
    )
    return Call("constellation", "ImportNodes", request, ImportReport.from_proto, idempotent=True)


def list_nodes(
    labels: Mapping[str, str], state: str, page_size: int, page_token: str
) -> Call[Page[Node]]:
    request = constellation_pb2.ListNodesRequest(
        labels=dict(labels),
        state=node_state_value(state) if state else 0,  # type: ignore[arg-type]
        page_size=page_size,
        page_token=page_token,
    )
    return Call(
        "constellation",
        "ListNodes",
        request,
        lambda response: Page(
            [Node.from_proto(n) for n in response.nodes], response.next_page_token
        ),
        idempotent=True,
    )


def set_node_state(node_id: str, state: str) -> Call[Node]:
    request = constellation_pb2.SetNodeStateRequest(
        id=node_id,
        state=node_state_value(state),  # type: ignore[arg-type]
    )
    return Call(
        "constellation",
        "SetNodeState",
        request,
        lambda response: Node.from_proto(response.node),
        idempotent=True,
    )


def upsert_station(
    station_id: str,
    name: str,
    latitude_deg: float,
    longitude_deg: float,
    altitude_m: float,
    min_elevation_deg: float,
    antennas: int,
    labels: Mapping[str, str],
    downlink_mbps: float,
    uplink_mbps: float,
) -> Call[UpsertedStation]:
    if antennas < 0:
        raise ValueError(f"antennas {antennas} is negative")
    station = constellation_pb2.Station(
        id=station_id,
        name=name,
        latitude_deg=latitude_deg,
        longitude_deg=longitude_deg,
        altitude_m=altitude_m,
        min_elevation_deg=min_elevation_deg,
        antennas=antennas,
        labels=dict(labels),
        downlink_mbps=downlink_mbps,
        uplink_mbps=uplink_mbps,
    )
    return Call(
        "constellation",
        "UpsertStation",
        constellation_pb2.UpsertStationRequest(station=station),
        lambda response: UpsertedStation(Station.from_proto(response.station), response.created),
        idempotent=True,
    )


def import_stations(text: str) -> Call[ImportReport]:
    return Call(
        "constellation",
        "UpsertStation",
        constellation_pb2.UpsertStationRequest(stations_text=text),
        lambda response: ImportReport(response.created_count, response.updated_count),
        idempotent=True,
    )


_PLAN_FORMATS = {
    "auto": constellation_pb2.CONTACT_PLAN_FORMAT_AUTO,
    "json": constellation_pb2.CONTACT_PLAN_FORMAT_JSON,
    "csv": constellation_pb2.CONTACT_PLAN_FORMAT_CSV,
}
_PLAN_MODES = {
    "replace": constellation_pb2.CONTACT_PLAN_MODE_REPLACE,
    "restrict": constellation_pb2.CONTACT_PLAN_MODE_RESTRICT,
}


def import_contact_plan(
    text: str, fmt: str, default_mode: str, dry_run: bool
) -> Call[ContactPlanReport]:
    if fmt not in _PLAN_FORMATS:
        raise ValueError(f"fmt {fmt!r}: use one of {', '.join(_PLAN_FORMATS)}")
    if default_mode not in _PLAN_MODES:
        raise ValueError(f"default_mode {default_mode!r}: use one of {', '.join(_PLAN_MODES)}")
    return Call(
        "constellation",
        "ImportContactPlan",
        constellation_pb2.ImportContactPlanRequest(
            text=text,
            format=_PLAN_FORMATS[fmt],
            default_mode=_PLAN_MODES[default_mode],
            dry_run=dry_run,
        ),
        ContactPlanReport.from_proto,
        # The same plan imported twice stores the same windows.
        idempotent=True,
    )


def list_stations(page_size: int, page_token: str) -> Call[Page[Station]]:
    return Call(
        "constellation",
        "ListStations",
        constellation_pb2.ListStationsRequest(page_size=page_size, page_token=page_token),
        lambda response: Page(
            [Station.from_proto(s) for s in response.stations], response.next_page_token
        ),
        idempotent=True,
    )


def list_contacts(
    node: str,
    station: str,
    start: datetime | None,
    end: datetime | None,
    page_size: int,
    page_token: str,
) -> Call[Page[Contact]]:
    request = constellation_pb2.ListContactsRequest(
        node=node, station=station, page_size=page_size, page_token=page_token
    )
    if start is not None:
        request.start.CopyFrom(_timestamp(start, "start"))
    if end is not None:
        request.end.CopyFrom(_timestamp(end, "end"))
    return Call(
        "constellation",
        "ListContacts",
        request,
        lambda response: Page(
            [Contact.from_proto(c) for c in response.contacts], response.next_page_token
        ),
        idempotent=True,
    )


# -- service requests ----------------------------------------------------------------------------

# A stream that ends normally is complete: the request reached a terminal state (or had, before
# the watch began). A stream that ends UNAVAILABLE after living a while reached the broker's time
# limit (or lost the connection): it is resumed at once after the last transition seen. One
# that ends UNAVAILABLE sooner than WATCH_QUICK_END_SECONDS (the broker is stopping or
# unreachable) is resumed after a growing pause, at most WATCH_FAILURES_MAX times in a row.
WATCH_QUICK_END_SECONDS = 1.0
WATCH_FAILURES_MAX = 3
WATCH_RESUME_BACKOFF_SECONDS = 0.5


def _count(value: int, name: str) -> int:
    if value < 0:
        raise ValueError(f"{name} {value} is negative")
    return value


def request_spec(spec: RequestSpec) -> request_pb2.RequestSpec:
    """The wire spec; ValueError for what is wrong on its face (the broker checks the rest)."""
    message = request_pb2.RequestSpec(
        name=spec.name,
        workload=spec.workload,
        cpu_millicores=_count(spec.cpu_millicores, "cpu_millicores"),
        run_seconds=_count(spec.run_seconds, "run_seconds"),
        storage_mb=_count(spec.storage_mb, "storage_mb"),
        input_mb=_count(spec.input_mb, "input_mb"),
        output_mb=_count(spec.output_mb, "output_mb"),
        priority=_count(spec.priority, "priority"),
        node_labels=dict(spec.node_labels),
        node_ids=list(spec.node_ids),
        station_countries=list(spec.station_countries),
        station_ids=list(spec.station_ids),
        input=spec.input,
    )
    message.deadline.CopyFrom(_timestamp(spec.deadline, "deadline"))
    if spec.not_before is not None:
        message.not_before.CopyFrom(_timestamp(spec.not_before, "not_before"))
    return message


def _request(response: Any) -> ServiceRequest:
    return ServiceRequest.from_proto(response.request)


def quote(spec: RequestSpec, eta: bool, tenant: str) -> Call[Quote]:
    return Call(
        "request",
        "Quote",
        request_pb2.QuoteRequest(spec=request_spec(spec), eta=eta, tenant=tenant),
        lambda response: Quote(
            Amounts.from_proto(response.cost.amounts),
            Amounts.from_proto(response.minimum.amounts),
            response.cost.explanation,
            Eta.from_proto(response.eta) if response.HasField("eta") else None,
            CancellationTerms.from_proto(response.terms) if response.HasField("terms") else None,
        ),
        idempotent=True,
    )


def explain_request(request_id: str) -> Call[Explanation]:
    return Call(
        "request",
        "ExplainRequest",
        request_pb2.ExplainRequestRequest(id=request_id),
        lambda response: Explanation(
            ServiceRequest.from_proto(response.request),
            Eta.from_proto(response.eta),
            CancellationTerms.from_proto(response.terms),
        ),
        idempotent=True,
    )


def submit(spec: RequestSpec, idempotency_key: str | None, tenant: str) -> Call[Submitted]:
    # The key is made here, once: every retry of this call carries it, so the broker returns
    # the request the first attempt created instead of reserving twice.
    request = request_pb2.SubmitRequest(
        spec=request_spec(spec),
        idempotency_key=idempotency_key if idempotency_key is not None else format_id(new_id()),
        tenant=tenant,
    )
    return Call(
        "request",
        "Submit",
        request,
        lambda response: Submitted(_request(response), response.created),
        idempotent=True,
    )


def get_request(request_id: str) -> Call[ServiceRequest]:
    return Call(
        "request",
        "GetRequest",
        request_pb2.GetRequestRequest(id=request_id),
        _request,
        idempotent=True,
    )


def list_requests(
    states: Sequence[str], tenant: str, page_size: int, page_token: str
) -> Call[Page[ServiceRequest]]:
    request = request_pb2.ListRequestsRequest(
        states=[request_state_value(state) for state in states],  # type: ignore[misc]
        tenant=tenant,
        page_size=page_size,
        page_token=page_token,
    )
    return Call(
        "request",
        "ListRequests",
        request,
        lambda response: Page(
            [ServiceRequest.from_proto(r) for r in response.requests], response.next_page_token
        ),
        idempotent=True,
    )


def cancel_request(request_id: str) -> Call[ServiceRequest]:
    # Cancelling a cancelled request returns it: safe to retry.
    return Call(
        "request",
        "CancelRequest",
        request_pb2.CancelRequestRequest(id=request_id),
        _request,
        idempotent=True,
    )


def cancel(request_id: str) -> Call[Cancellation]:
    # As cancel_request, with what it charged: a retry returns the same charge.
    return Call(
        "request",
        "CancelRequest",
        request_pb2.CancelRequestRequest(id=request_id),
        lambda response: Cancellation(
            ServiceRequest.from_proto(response.request),
            Amounts.from_proto(response.charged),
            CancellationTerms.from_proto(response.terms),
        ),
        idempotent=True,
    )


# -- blobs and evidence: pushes are content-addressed, so a retry stores nothing twice ---------

_GROUND_LINKS = {
    "contacts": constellation_pb2.GROUND_LINK_CONTACTS,
    "always": constellation_pb2.GROUND_LINK_ALWAYS,
}


def create_enrollment_token(node: str, ground_link: str, ttl_seconds: int) -> Call[EnrollmentToken]:
    if ground_link not in _GROUND_LINKS:
        raise ValueError(f"unknown ground link {ground_link!r}: use contacts or always")
    request = constellation_pb2.CreateEnrollmentTokenRequest(
        node=node, ground_link=_GROUND_LINKS[ground_link], ttl_seconds=_count(ttl_seconds, "ttl")
    )
    return Call(
        "constellation",
        "CreateEnrollmentToken",
        request,
        lambda response: EnrollmentToken(
            response.token, response.expires_at.ToDatetime(tzinfo=UTC)
        ),
        # Not retried: a retry would make a second token, replacing the first.
        idempotent=False,
    )


def _pushed(response: Any) -> PushedBlob:
    imports = tuple(getattr(response, "imports", ()))
    return PushedBlob(response.digest, response.size, response.created, imports)


def push_workload(module: bytes, tenant: str) -> Call[PushedBlob]:
    request = request_pb2.PushWorkloadRequest(module=module, tenant=tenant)
    return Call("request", "PushWorkload", request, _pushed, idempotent=True)


def push_input(data: bytes, tenant: str) -> Call[PushedBlob]:
    request = request_pb2.PushInputRequest(data=data, tenant=tenant)
    return Call("request", "PushInput", request, _pushed, idempotent=True)


def get_blob(digest: str, offset: int) -> Call[request_pb2.GetBlobResponse]:
    request = request_pb2.GetBlobRequest(digest=digest, offset=_count(offset, "offset"))
    return Call("request", "GetBlob", request, _same, idempotent=True)


# Chunks of one blob (4 MiB each: more than any blob the broker stores).
BLOB_CHUNKS_MAX = 1024


def checked_blob(digest: str, data: bytes) -> bytes:
    """`data` if its SHA-256 is `digest` ("sha256:<hex>"), else BrokerIntegrityError."""
    found = "sha256:" + hashlib.sha256(data).hexdigest()
    if found != digest:
        raise BrokerIntegrityError(
            "", f"the broker served {len(data):,} bytes with digest {found} for {digest}"
        )
    return data


def result_digest_of(evidence: Evidence) -> str:
    """The result digest a request's usage receipt names, once the receipt verifies under the
    node key the evidence names; BrokerIntegrityError otherwise (or with no result)."""
    request = evidence.request
    if not evidence.receipt:
        raise FailedPreconditionError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"request {request.id} has no usage receipt yet (it is {request.state})",
        )
    try:
        receipt = open_receipt(
            evidence.receipt,
            evidence.node_public_key,
            key_id(request.placement.node if request.placement else "", evidence.node_public_key),
        )
    except LedgerIntegrityError as error:
        raise BrokerIntegrityError(
            "", f"request {request.id}'s receipt does not verify: {error}"
        ) from None
    if receipt.result_sha256 is None:
        raise FailedPreconditionError(
            grpc.StatusCode.FAILED_PRECONDITION, f"request {request.id}'s receipt names no result"
        )
    return "sha256:" + receipt.result_sha256.hex()


def get_evidence(request_id: str) -> Call[Evidence]:
    return Call(
        "request",
        "GetEvidence",
        request_pb2.GetEvidenceRequest(id=request_id),
        lambda response: Evidence(
            ServiceRequest.from_proto(response.request),
            response.ticket,
            response.receipt,
            response.receipt_entry_index,
            response.node_key_entry_index,
            response.node_public_key,
            tuple(response.settlement_transfer_ids),
        ),
        idempotent=True,
    )


class WatchCursor:
    """Where a watch is, shared by both clients: the request of the next stream (resuming
    after the last transition seen), and what to do when a stream ends."""

    def __init__(self, request_id: str, after_sequence: int) -> None:
        if after_sequence < 0:
            raise ValueError(f"after_sequence {after_sequence} is negative")
        self.request_id = request_id
        self.seen = after_sequence
        self.done = False
        self._failures = 0

    def request(self) -> request_pb2.WatchRequestRequest:
        return request_pb2.WatchRequestRequest(id=self.request_id, after_sequence=self.seen)

    def received(self, message: request_pb2.WatchRequestResponse) -> Transition:
        transition = Transition.from_proto(message)
        self.seen = transition.sequence
        self.done = transition.terminal
        self._failures = 0
        return transition

    def ended(self, seconds: float, error: BrokerCallError | None) -> float:
        """The stream ended after `seconds`, with `error` if it failed: sets `done`, or
        returns the pause before resuming, or raises."""
        if error is None:
            self.done = True
            return 0.0
        if error.code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            raise error
        if seconds >= WATCH_QUICK_END_SECONDS:
            self._failures = 0
            return 0.0
        self._failures += 1
        if self._failures >= WATCH_FAILURES_MAX:
            raise error
        return WATCH_RESUME_BACKOFF_SECONDS * self._failures
