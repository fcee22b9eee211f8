"""Every SDK call defined once: which RPC, the request built from Python arguments, how the
response is parsed, and whether it is safe to retry. The sync and async clients only run them.

Owns: argument checking that can be done client-side (amount signs, id formats) and making
calls idempotent before the first attempt (ids are generated here, once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from orbitq.clients.ids import IdLike, id_bytes, new_id
from orbitq.clients.models import (
    Account,
    ApiKey,
    Contact,
    ImportReport,
    IssuedApiKey,
    Node,
    PublicKey,
    Station,
    Tenant,
    TransferOutcome,
    TransferRecord,
    TransferSpec,
    UpsertedStation,
    code_value,
    kind_value,
    node_state_value,
)
from orbitq.v1 import admin_pb2, common_pb2, constellation_pb2, ledger_pb2, quota_pb2

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
