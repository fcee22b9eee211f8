"""What the SDK returns: small frozen dataclasses with plain Python types.

Owns: the client-side shape of tenants, keys, accounts, transfers and outcomes, of the
signed ledger's entries, checkpoints and proofs, of nodes, stations and contacts, of service
requests (specs, placements, transitions, quotes), and their conversion from protobuf messages.
Kinds, codes, flags and results are lower-case names ("cpu", "mint", "pending",
"exceeds_credits"), stable across versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from orbitq.clients.ids import format_id
from orbitq.v1 import admin_pb2, common_pb2, constellation_pb2, ledger_pb2, quota_pb2, request_pb2

KINDS = ("cpu", "storage", "link")


def _enum_label(enum: Any, value: int, prefix: str) -> str:
    name: str = enum.Name(value) if value in enum.values() else f"{prefix}{value}"
    return name.removeprefix(prefix).lower()


def kind_label(value: int) -> str:
    return _enum_label(common_pb2.ResourceKind, value, "RESOURCE_KIND_")


def kind_value(label: str) -> int:
    try:
        return int(common_pb2.ResourceKind.Value("RESOURCE_KIND_" + label.upper()))
    except ValueError:
        raise ValueError(f"unknown resource kind {label!r}: use cpu, storage or link") from None


def code_label(value: int) -> str:
    return _enum_label(quota_pb2.TransferCode, value, "TRANSFER_CODE_")


def code_value(label: str) -> int:
    try:
        return int(quota_pb2.TransferCode.Value("TRANSFER_CODE_" + label.upper()))
    except ValueError:
        names = ", ".join(
            name.removeprefix("TRANSFER_CODE_").lower()
            for name in quota_pb2.TransferCode.keys()[1:]
        )
        raise ValueError(f"unknown transfer code {label!r}: use one of {names}") from None


def result_label(value: int) -> str:
    return _enum_label(quota_pb2.CreateTransferResult, value, "CREATE_TRANSFER_RESULT_")


def _time(message: Timestamp, present: bool = True) -> datetime | None:
    if not present:
        return None
    from datetime import UTC

    return message.ToDatetime(tzinfo=UTC)


@dataclass(frozen=True)
class Tenant:
    name: str
    display_name: str
    created_at: datetime | None

    @classmethod
    def from_proto(cls, message: admin_pb2.Tenant) -> Tenant:
        return cls(message.name, message.display_name, _time(message.created_at))


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    role: str
    tenant: str
    node: str
    label: str
    created_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_proto(cls, message: admin_pb2.ApiKeyInfo) -> ApiKey:
        return cls(
            key_id=message.key_id,
            role=_enum_label(common_pb2.Role, message.role, "ROLE_"),
            tenant=message.tenant,
            node=message.node,
            label=message.label,
            created_at=_time(message.created_at),
            revoked_at=_time(message.revoked_at, message.HasField("revoked_at")),
        )


@dataclass(frozen=True)
class IssuedApiKey:
    key: ApiKey
    #: The whole key: shown once, never again.
    api_key: str


@dataclass(frozen=True)
class Account:
    id: int
    kind: str
    #: The owning tenant, or "" for a system account.
    tenant: str
    #: "treasury", "escrow", "consumed", or "" for a tenant account.
    system: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    available: int

    @property
    def owner(self) -> str:
        return self.tenant or f"system:{self.system}"

    @classmethod
    def from_proto(cls, message: quota_pb2.Account) -> Account:
        system = (
            _enum_label(quota_pb2.SystemAccount, message.system, "SYSTEM_ACCOUNT_")
            if message.system
            else ""
        )
        return cls(
            id=message.id,
            kind=kind_label(message.kind),
            tenant=message.tenant,
            system=system,
            debits_pending=message.debits_pending,
            debits_posted=message.debits_posted,
            credits_pending=message.credits_pending,
            credits_posted=message.credits_posted,
            available=message.available,
        )


@dataclass(frozen=True)
class TransferRecord:
    """A transfer as the ledger stored it."""

    id: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    kind: str
    code: str
    flags: frozenset[str]
    pending_id: str
    user_data: bytes
    timeout_seconds: int
    timestamp_ns: int

    @classmethod
    def from_proto(cls, message: quota_pb2.Transfer) -> TransferRecord:
        flags = frozenset(
            name
            for name in ("linked", "pending", "post_pending", "void_pending")
            if getattr(message.flags, name)
        )
        return cls(
            id=format_id(message.id),
            debit_account_id=message.debit_account_id,
            credit_account_id=message.credit_account_id,
            amount=message.amount,
            kind=kind_label(message.kind),
            code=code_label(message.code),
            flags=flags,
            pending_id=format_id(message.pending_id) if message.pending_id else "",
            user_data=message.user_data,
            timeout_seconds=message.timeout_seconds,
            timestamp_ns=message.timestamp_ns,
        )


@dataclass(frozen=True)
class TransferOutcome:
    """What happened to one transfer of a call."""

    index: int
    #: "ok", "exists", "exceeds_credits", "linked_event_failed", ...
    result: str
    #: For "id_already_failed": what the first attempt with this id got.
    original_result: str
    transfer: TransferRecord | None

    @property
    def ok(self) -> bool:
        return self.result in ("ok", "exists")

    @classmethod
    def from_proto(cls, message: quota_pb2.TransferOutcome) -> TransferOutcome:
        return cls(
            index=message.index,
            result=result_label(message.result),
            original_result=result_label(message.original_result)
            if message.original_result
            else "",
            transfer=TransferRecord.from_proto(message.transfer)
            if message.HasField("transfer")
            else None,
        )


@dataclass(frozen=True)
class TransferSpec:
    """One transfer of a `create_transfers` batch (operator)."""

    #: 128-bit id; the SDK makes one when None (and keeps it across retries).
    id: int | None = None
    debit_account_id: int = 0
    credit_account_id: int = 0
    amount: int = 0
    kind: str = ""
    code: str = "transfer"
    pending_id: int = 0
    user_data: bytes = b""
    timeout_seconds: int = 0
    linked: bool = False
    pending: bool = False
    post_pending: bool = False
    void_pending: bool = False


# -- the signed ledger ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountCreation:
    """What an `account_created` entry of the log records."""

    id: int
    kind: str
    #: The owning tenant, or "" for a system account.
    tenant: str
    #: "treasury", "escrow", "consumed", or "" for a tenant account.
    system: str
    debits_must_not_exceed_credits: bool

    @property
    def owner(self) -> str:
        return self.tenant or f"system:{self.system}"


@dataclass(frozen=True)
class NodeKeyRecord:
    """What a `node_key_enrolled` entry records: a node's Ed25519 key, from this entry on the
    one its usage receipts verify under (docs/ledger-format.md E5)."""

    node: str
    #: Raw 32-byte Ed25519 public key.
    public_key: bytes
    #: The 4-byte key id receipts carry (docs/agent-format.md S2).
    key_id: bytes
    #: Wasm fuel per core-second: cpu charged = ceil(fuel / rate).
    fuel_per_core_second: int
    #: The sandbox and its version, e.g. "wasmtime 51.0.0".
    runtime: str


@dataclass(frozen=True)
class ReceiptRecord:
    """What a `receipt_recorded` entry records: a node's usage receipt the broker accepted
    (docs/ledger-format.md E5)."""

    request_id: str
    node: str
    #: The COSE_Sign1 envelope exactly as the node signed it (docs/agent-format.md).
    receipt: bytes

    @property
    def digest(self) -> bytes:
        """SHA-256 of the receipt: the user_data of the transfers that settle against it."""
        return hashlib.sha256(self.receipt).digest()


@dataclass(frozen=True)
class LedgerEntry:
    """One entry (leaf) of the signed log, decoded; `data` is the exact leaf bytes."""

    index: int
    timestamp_ns: int
    #: "account_created", "transfer_recorded", "node_key_enrolled" or "receipt_recorded".
    type: str
    #: For account_created.
    account: AccountCreation | None
    #: For transfer_recorded: the transfer as recorded, with its outcome in `result`.
    transfer: TransferRecord | None
    #: "ok" for a transfer that moved balances, else the recorded failure; "" for the others.
    result: str
    data: bytes
    #: For node_key_enrolled.
    node_key: NodeKeyRecord | None = None
    #: For receipt_recorded.
    receipt: ReceiptRecord | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> LedgerEntry:
        """Decode leaf bytes; ValueError if they are not a LedgerEntry with a body."""
        message = ledger_pb2.LedgerEntry()
        try:
            message.ParseFromString(data)
        except Exception as error:  # protobuf's DecodeError
            raise ValueError(f"not a LedgerEntry: {error}") from None
        body = message.WhichOneof("body")
        if body == "account_created":
            created = message.account_created
            account = AccountCreation(
                id=created.id,
                kind=kind_label(created.kind),
                tenant=created.tenant,
                system=_enum_label(quota_pb2.SystemAccount, created.system, "SYSTEM_ACCOUNT_")
                if created.system
                else "",
                debits_must_not_exceed_credits=created.debits_must_not_exceed_credits,
            )
            return cls(message.index, message.timestamp_ns, body, account, None, "", data)
        if body == "transfer_recorded":
            recorded = message.transfer_recorded
            return cls(
                message.index,
                message.timestamp_ns,
                body,
                None,
                TransferRecord.from_proto(recorded.transfer),
                result_label(recorded.result),
                data,
            )
        if body == "node_key_enrolled":
            enrolled = message.node_key_enrolled
            node_key = NodeKeyRecord(
                enrolled.node,
                enrolled.public_key,
                enrolled.key_id,
                enrolled.fuel_per_core_second,
                enrolled.runtime,
            )
            return cls(message.index, message.timestamp_ns, body, None, None, "", data, node_key)
        if body == "receipt_recorded":
            recorded_receipt = message.receipt_recorded
            receipt = ReceiptRecord(
                recorded_receipt.request_id, recorded_receipt.node, recorded_receipt.receipt
            )
            return cls(
                message.index, message.timestamp_ns, body, None, None, "", data, None, receipt
            )
        raise ValueError("a LedgerEntry without a body")


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head of the broker's log that this client verified.

    Verified means: the note's signature checks with the broker's key (pinned with
    `ledger_key=`, or on first use), and the tree is an extension of the checkpoint this client
    verified before (`previous_size`), by a consistency proof.
    """

    origin: str
    size: int
    root_hash: bytes
    #: The whole signed note (C2SP tlog-checkpoint), e.g. to hand to a witness.
    note: str
    #: The key it was verified with (C2SP verifier key string).
    verifier_key: str
    #: "pinned": the key given as ledger_key=; "tofu": the broker's own key, pinned on first use.
    key_source: str
    #: The size of the checkpoint verified before this one (0: none; this one was trusted on
    #: its signature alone).
    previous_size: int


@dataclass(frozen=True)
class Proof:
    """An entry proved to be in a verified checkpoint (RFC 9162 inclusion proof)."""

    index: int
    entry: LedgerEntry
    leaf_hash: bytes
    #: The audit path, leaf to root.
    hashes: tuple[bytes, ...]
    checkpoint: Checkpoint


@dataclass(frozen=True)
class PublicKey:
    """The broker's checkpoint-signing key, as it presents it."""

    #: C2SP verifier key string: <name>+<hex key id>+<base64(0x01 || key)>.
    verifier_key: str
    origin: str
    public_key: bytes


@dataclass(frozen=True)
class LogVerification:
    """The outcome of verifying the whole log against a verified checkpoint."""

    entries: int
    checkpoint: Checkpoint


# -- the constellation ---------------------------------------------------------------------------

NODE_STATES = ("ready", "degraded", "down")


def node_state_label(value: int) -> str:
    return _enum_label(constellation_pb2.NodeState, value, "NODE_STATE_")


def node_state_value(label: str) -> int:
    if label not in NODE_STATES:
        raise ValueError(f"unknown node state {label!r}: use ready, degraded or down")
    return int(constellation_pb2.NodeState.Value("NODE_STATE_" + label.upper()))


@dataclass(frozen=True)
class Node:
    """A satellite with a computer, as the broker stores it."""

    #: The NORAD catalog number as decimal text.
    id: str
    name: str
    norad_id: int
    #: The TLE lines it was imported from ("" when it came from OMM: see `omm_json`).
    tle_line1: str
    tle_line2: str
    #: The element set as one OMM JSON object (when there are no TLE lines).
    omm_json: str
    epoch: datetime | None
    cpu_millicores: int
    storage_mb: int
    downlink_mbps: int
    uplink_mbps: int
    labels: Mapping[str, str] = field(hash=False)
    #: "ready", "degraded" or "down".
    state: str
    updated_at: datetime | None

    @classmethod
    def from_proto(cls, message: constellation_pb2.Node) -> Node:
        return cls(
            id=message.id,
            name=message.name,
            norad_id=message.norad_id,
            tle_line1=message.tle_line1,
            tle_line2=message.tle_line2,
            omm_json=message.omm_json,
            epoch=_time(message.epoch, message.HasField("epoch")),
            cpu_millicores=message.capacity.cpu_millicores,
            storage_mb=message.capacity.storage_mb,
            downlink_mbps=message.capacity.downlink_mbps,
            uplink_mbps=message.capacity.uplink_mbps,
            labels=dict(message.labels),
            state=node_state_label(message.state),
            updated_at=_time(message.updated_at, message.HasField("updated_at")),
        )


@dataclass(frozen=True)
class Station:
    """A ground station: WGS-84 position, how low it sees, how many satellites at once."""

    id: str
    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    min_elevation_deg: float
    antennas: int
    labels: Mapping[str, str] = field(hash=False)
    downlink_mbps: float
    uplink_mbps: float

    @classmethod
    def from_proto(cls, message: constellation_pb2.Station) -> Station:
        return cls(
            id=message.id,
            name=message.name,
            latitude_deg=message.latitude_deg,
            longitude_deg=message.longitude_deg,
            altitude_m=message.altitude_m,
            min_elevation_deg=message.min_elevation_deg,
            antennas=message.antennas,
            labels=dict(message.labels),
            downlink_mbps=message.downlink_mbps,
            uplink_mbps=message.uplink_mbps,
        )


@dataclass(frozen=True)
class UpsertedStation:
    station: Station
    #: True if the station was new, False if it replaced one with the same id.
    created: bool


@dataclass(frozen=True)
class Contact:
    """`node` can talk to `station` during [aos, los)."""

    id: str
    node: str
    station: str
    aos: datetime
    los: datetime
    max_elevation_deg: float

    @classmethod
    def from_proto(cls, message: constellation_pb2.Contact) -> Contact:
        aos, los = _time(message.aos), _time(message.los)
        assert aos is not None
        assert los is not None
        return cls(message.id, message.node, message.station, aos, los, message.max_elevation_deg)


@dataclass(frozen=True)
class ImportProblem:
    """One bad line (TLE, CSV) or record (JSON) of an import."""

    line: int
    message: str
    #: What `line` counts: "line" or "record".
    unit: str = "line"

    def __str__(self) -> str:
        return f"{self.unit} {self.line}: {self.message}"


@dataclass(frozen=True)
class ImportReport:
    """What an import did."""

    created: int
    updated: int
    #: Bad records that were skipped (only with skip_bad; otherwise the import raises).
    problems: tuple[ImportProblem, ...] = ()
    #: Ids of nodes whose element sets are days away from the broker's clock.
    stale: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_proto(cls, message: constellation_pb2.ImportNodesResponse) -> ImportReport:
        return cls(
            created=message.created,
            updated=message.updated,
            problems=tuple(
                ImportProblem(p.line, p.message, p.unit or "line") for p in message.problems
            ),
            stale=tuple(message.stale),
            warnings=tuple(message.warnings),
        )


@dataclass(frozen=True)
class ContactPlanReport:
    """What importing a booked contact plan did (or would do, with `dry_run`)."""

    #: Booked windows stored.
    windows: int
    #: Stations whose booked plan was set, by id.
    stations: tuple[str, ...]
    #: Their booked windows, not yet over, that the plan replaced.
    replaced: int
    #: One per window where the satellite is not visible for all of it, naming the window.
    warnings: tuple[str, ...]
    #: Windows the satellite is not visible at all during.
    not_visible: int
    dry_run: bool

    @classmethod
    def from_proto(cls, message: constellation_pb2.ImportContactPlanResponse) -> ContactPlanReport:
        return cls(
            windows=message.windows,
            stations=tuple(message.stations),
            replaced=message.replaced,
            warnings=tuple(message.warnings),
            not_visible=message.not_visible,
            dry_run=message.dry_run,
        )


# -- service requests ----------------------------------------------------------------------------

REQUEST_STATES = (
    "submitted",
    "pending",
    "placed",
    "running",
    "completed",
    "unschedulable",
    "cancelled",
    "failed",
    "expired",
)
TERMINAL_REQUEST_STATES = frozenset(
    {"completed", "unschedulable", "cancelled", "failed", "expired"}
)


def request_state_label(value: int) -> str:
    return _enum_label(request_pb2.RequestState, value, "REQUEST_STATE_")


def request_state_value(label: str) -> int:
    if label not in REQUEST_STATES:
        raise ValueError(f"unknown request state {label!r}: use one of {', '.join(REQUEST_STATES)}")
    return int(request_pb2.RequestState.Value("REQUEST_STATE_" + label.upper()))


def _utc(message: Timestamp) -> datetime:
    value = _time(message)
    assert value is not None
    return value


@dataclass(frozen=True)
class Amounts:
    """Tokens of each kind: cpu core-seconds, storage MB-hours, link seconds."""

    cpu: int = 0
    storage: int = 0
    link: int = 0

    @classmethod
    def from_proto(cls, message: common_pb2.Amounts) -> Amounts:
        return cls(message.cpu, message.storage, message.link)


@dataclass(frozen=True, kw_only=True)
class RequestSpec:
    """What a tenant asks for (brief §5). Times are aware datetimes; the broker keeps whole
    seconds, rounding inwards (not_before up, deadline down)."""

    #: When the result must be down on the ground by.
    deadline: datetime
    cpu_millicores: int
    run_seconds: int
    storage_mb: int
    #: Megabytes uplinked before the run, and downlinked after it.
    input_mb: int = 0
    output_mb: int = 0
    #: Not before this instant; None: from submission.
    not_before: datetime | None = None
    #: 0 (lowest) to 9; higher runs first and may displace lower-priority placed work.
    priority: int = 0
    name: str = ""
    #: Opaque reference to the workload (image, script id).
    workload: str = ""
    #: The node must carry all of these labels.
    node_labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: The node must be one of these (NORAD ids); empty: any.
    node_ids: tuple[str, ...] = ()
    #: Uplink and downlink only through stations in these countries (ISO 3166-1 alpha-2).
    station_countries: tuple[str, ...] = ()
    #: Uplink and downlink only through these stations.
    station_ids: tuple[str, ...] = ()
    #: The input ("sha256:<hex>" from `push_input`); "" for none. Counts toward input_mb.
    input: str = ""

    @classmethod
    def from_proto(cls, message: request_pb2.RequestSpec) -> RequestSpec:
        return cls(
            name=message.name,
            workload=message.workload,
            cpu_millicores=message.cpu_millicores,
            run_seconds=message.run_seconds,
            storage_mb=message.storage_mb,
            input_mb=message.input_mb,
            output_mb=message.output_mb,
            not_before=_time(message.not_before, message.HasField("not_before")),
            deadline=_utc(message.deadline),
            priority=message.priority,
            node_labels=dict(message.node_labels),
            node_ids=tuple(message.node_ids),
            station_countries=tuple(message.station_countries),
            station_ids=tuple(message.station_ids),
            input=message.input,
        )


@dataclass(frozen=True)
class DownlinkSegment:
    contact: str
    station: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PlacementContact:
    """A contact window as the scheduler used it (whole seconds inside the real window)."""

    id: str
    node: str
    station: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Placement:
    """Where and when a request runs: cpu over [start, end), storage until `finish`; the ticket
    goes up over [uplink_at, uplink_end), the result comes down in `downlink` segments."""

    node: str
    start: datetime
    end: datetime
    uplink_contact: str
    uplink_station: str
    uplink_at: datetime
    uplink_end: datetime
    downlink: tuple[DownlinkSegment, ...]
    contacts: tuple[PlacementContact, ...]

    @property
    def finish(self) -> datetime:
        """When the last downlink segment ends (the run's end without output)."""
        return self.downlink[-1].end if self.downlink else self.end

    @classmethod
    def from_proto(cls, message: request_pb2.Placement) -> Placement:
        return cls(
            node=message.node,
            start=_utc(message.start),
            end=_utc(message.end),
            uplink_contact=message.uplink_contact_id,
            uplink_station=message.uplink_station,
            uplink_at=_utc(message.uplink_at),
            uplink_end=_utc(message.uplink_end),
            downlink=tuple(
                DownlinkSegment(s.contact_id, s.station, _utc(s.start), _utc(s.end))
                for s in message.downlink
            ),
            contacts=tuple(
                PlacementContact(c.id, c.node, c.station, _utc(c.start), _utc(c.end))
                for c in message.contacts
            ),
        )


@dataclass(frozen=True)
class PlacementReason:
    """Why the scheduler's plugin `plugin` turned the request away on `nodes` nodes."""

    plugin: str
    reason: str
    nodes: int


@dataclass(frozen=True)
class ServiceRequest:
    id: str
    tenant: str
    spec: RequestSpec
    #: submitted, pending, placed, running, completed, unschedulable, cancelled, failed, expired
    state: str
    #: Tokens reserved at submission (the most the request can cost).
    reserved: Amounts
    #: Tokens charged at completion.
    settled: Amounts
    placement: Placement | None
    #: Why it is where it is: waiting, placed, unschedulable, expired, failed ...
    reason: str
    placement_reasons: tuple[PlacementReason, ...]
    idempotency_key: str
    submitted_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    #: The sequence number of its latest transition (see `watch_request`).
    sequence: int
    #: SHA-256 of the usage receipt that settled it (b"" until then): the settling transfers'
    #: user_data.
    receipt_digest: bytes = b""
    #: Who caused a failed request: "operator" (refunded) or "workload" (charged); "" else.
    fault: str = ""
    #: How the run ended, from the receipt: ok, trap, out_of_fuel, wall_time,
    #: output_too_large, exit, aborted; "" before.
    outcome: str = ""
    #: The result's content address ("sha256:<hex>") and size, from the receipt.
    result: str = ""
    result_bytes: int = 0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_REQUEST_STATES

    @classmethod
    def from_proto(cls, message: request_pb2.ServiceRequest) -> ServiceRequest:
        return cls(
            id=message.id,
            tenant=message.tenant,
            spec=RequestSpec.from_proto(message.spec),
            state=request_state_label(message.state),
            reserved=Amounts.from_proto(message.cost.amounts),
            settled=Amounts.from_proto(message.settled),
            placement=Placement.from_proto(message.placement)
            if message.HasField("placement")
            else None,
            reason=message.reason,
            placement_reasons=tuple(
                PlacementReason(r.plugin, r.reason, r.nodes) for r in message.placement_reasons
            ),
            idempotency_key=message.idempotency_key,
            submitted_at=_utc(message.submitted_at),
            updated_at=_utc(message.updated_at),
            ended_at=_time(message.ended_at, message.HasField("ended_at")),
            sequence=message.sequence,
            receipt_digest=message.receipt_digest,
            fault=_enum_label(request_pb2.Fault, message.fault, "FAULT_") if message.fault else "",
            outcome=_enum_label(request_pb2.RunOutcome, message.outcome, "RUN_OUTCOME_")
            if message.outcome
            else "",
            result=message.result,
            result_bytes=message.result_bytes,
        )


@dataclass(frozen=True)
class PushedBlob:
    """A workload module or input stored on the broker, named by its content address."""

    #: "sha256:<64 hex>": what a request's `workload` or `input` names.
    digest: str
    size: int
    #: False when this tenant had pushed the same bytes before.
    created: bool
    #: The WASI functions a module imports.
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnrollmentToken:
    """A one-time token with which a node's agent enrolls (`orbitq agent init`)."""

    token: str
    expires_at: datetime


@dataclass(frozen=True)
class Evidence:
    """What backs a request's charge: the ticket the broker signed, the usage receipt the
    node signed, where they sit in the signed log, and the settling transfers."""

    request: ServiceRequest
    ticket: bytes
    receipt: bytes
    receipt_entry_index: int
    node_key_entry_index: int
    node_public_key: bytes
    settlement_transfer_ids: tuple[bytes, ...]


@dataclass(frozen=True)
class Submitted:
    request: ServiceRequest
    #: False when the idempotency key matched a request submitted before.
    created: bool


@dataclass(frozen=True)
class Eta:
    """When a request runs or could run, computed by the scheduler's own cycle on a copy of the
    current world, or why not and the smallest change that fits. A later submission can still
    take the slot."""

    #: It fits: `placement` is where (`planned`: its stored placement, else computed now).
    fits: bool
    planned: bool
    placement: Placement | None
    #: Why it does not fit: each scheduler plugin's reason and the nodes it turned away.
    reasons: tuple[PlacementReason, ...]
    summary: str
    #: The least extra time before the deadline that fits (None: none within `searched`).
    later_deadline: timedelta | None
    deadline_searched: timedelta
    #: Stations outside the selector that make it fit when allowed too.
    allow_stations: tuple[str, ...]
    #: Tokens short per kind of what Submit would reserve (quotes for a tenant).
    short: Amounts
    #: For people: "fits if the deadline is 37 min later, or with station NO allowed".
    advice: str
    nodes: int
    contacts: int
    placements: int
    probes: int
    #: Contacts or placements were cut at the broker's bounds.
    truncated: bool
    computed_at: datetime

    @classmethod
    def from_proto(cls, message: request_pb2.Eta) -> Eta:
        return cls(
            fits=message.fits,
            planned=message.planned,
            placement=Placement.from_proto(message.placement)
            if message.HasField("placement")
            else None,
            reasons=tuple(PlacementReason(r.plugin, r.reason, r.nodes) for r in message.reasons),
            summary=message.summary,
            later_deadline=timedelta(seconds=message.later_deadline_seconds)
            if message.later_deadline_seconds
            else None,
            deadline_searched=timedelta(seconds=message.deadline_searched_seconds),
            allow_stations=tuple(message.allow_stations),
            short=Amounts.from_proto(message.short),
            advice=message.advice,
            nodes=message.nodes,
            contacts=message.contacts,
            placements=message.placements,
            probes=message.probes,
            truncated=message.truncated,
            computed_at=_utc(message.computed_at),
        )


@dataclass(frozen=True)
class CancellationTerms:
    """Cancelling a placed request is free until `cutoff` (`cutoff_seconds` before its uplink);
    after it, `fee` (`fee_percent` of its link tokens) is charged. `cutoff` None: not placed,
    free. `due_now`: what cancelling now would charge."""

    cutoff: datetime | None
    cutoff_seconds: int
    fee_percent: int
    fee: Amounts
    due_now: Amounts
    summary: str

    @classmethod
    def from_proto(cls, message: request_pb2.CancellationTerms) -> CancellationTerms:
        return cls(
            cutoff=_time(message.cutoff, message.HasField("cutoff")),
            cutoff_seconds=message.cutoff_seconds,
            fee_percent=message.fee_percent,
            fee=Amounts.from_proto(message.fee),
            due_now=Amounts.from_proto(message.due_now),
            summary=message.summary,
        )


@dataclass(frozen=True)
class Explanation:
    """Why a request is where it is and when it runs or could (see `Eta`), with its terms."""

    request: ServiceRequest
    eta: Eta
    terms: CancellationTerms


@dataclass(frozen=True)
class Cancellation:
    """A cancelled request, what cancelling it charged and the terms it was cancelled under."""

    request: ServiceRequest
    charged: Amounts
    terms: CancellationTerms


@dataclass(frozen=True)
class Quote:
    """What a spec costs: `cost` is what Submit reserves (the worst case over the nodes the
    request may use), `minimum` the least it can cost; when asked, `eta` (where it would fit
    now, or the smallest change that fits) and its cancellation `terms`."""

    cost: Amounts
    minimum: Amounts
    explanation: str
    eta: Eta | None = None
    terms: CancellationTerms | None = None


@dataclass(frozen=True)
class Transition:
    """One state change of a request, with the request as it was when the broker sent it."""

    sequence: int
    #: "" for the first transition.
    from_state: str
    to_state: str
    at: datetime
    reason: str
    request: ServiceRequest

    @property
    def terminal(self) -> bool:
        return self.to_state in TERMINAL_REQUEST_STATES

    @classmethod
    def from_proto(cls, message: request_pb2.WatchRequestResponse) -> Transition:
        transition = message.transition
        return cls(
            sequence=transition.sequence,
            from_state=request_state_label(transition.from_state) if transition.from_state else "",
            to_state=request_state_label(transition.to_state),
            at=_utc(transition.at),
            reason=transition.reason,
            request=ServiceRequest.from_proto(message.request),
        )


# -- usage receipts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedReceipt:
    """A request's usage receipt, verified by this client (docs/ledger-format.md C6): signed by
    its node's key; that key's NodeKeyEnrolled entry and the ReceiptRecorded entry proved to be
    in a verified checkpoint; its digest the user_data of every settling transfer, each proved
    too, and together they post no more than the receipt backs."""

    request_id: str
    node: str
    #: How the run ended: ok, trap, out_of_fuel, wall_time, output_too_large, exit, aborted.
    outcome: str
    exit_code: int
    #: Wasm fuel consumed, and the core-seconds it makes at the node's enrolled rate.
    fuel: int
    cpu_core_seconds: int
    storage_mb_seconds: int
    bytes_downlinked: int
    link_seconds: int
    uplink_seconds: int
    started_at: datetime
    ended_at: datetime
    issued_at: datetime
    #: SHA-256 of the result the run produced (None: no result) and its size.
    result_sha256: bytes | None
    result_bytes: int
    runtime: str
    #: SHA-256 of the ticket the node ran under.
    ticket_sha256: bytes
    #: What the receipt backs, per kind (docs/agent-format.md R4), and what was settled.
    charge: Amounts
    settled: Amounts
    #: SHA-256 of the receipt envelope: the settling transfers' user_data.
    digest: bytes
    #: The COSE_Sign1 envelope exactly as the node signed it.
    receipt: bytes
    #: The node's key that signed it, its rate, and where both entries sit in the log.
    node_public_key: bytes
    fuel_per_core_second: int
    node_key_entry: int
    receipt_entry: int
    #: The settling transfers, as proved.
    settlements: tuple[TransferRecord, ...]
    #: The newest checkpoint the entries were proved in.
    checkpoint: Checkpoint


# -- budgets and usage ---------------------------------------------------------------------------

BUDGET_PERIODS = ("day", "week", "month")
USAGE_GROUPINGS = ("day", "week", "month", "node", "kind")


def _label_value(enum: Any, prefix: str, label: str, choices: tuple[str, ...], what: str) -> int:
    if label not in choices:
        raise ValueError(f"unknown {what} {label!r}: use one of {', '.join(choices)}")
    return int(enum.Value(prefix + label.upper()))


def period_value(label: str) -> int:
    return _label_value(quota_pb2.BudgetPeriod, "BUDGET_PERIOD_", label, BUDGET_PERIODS, "period")


def grouping_value(label: str) -> int:
    return _label_value(
        quota_pb2.UsageGrouping, "USAGE_GROUPING_", label, USAGE_GROUPINGS, "grouping"
    )


@dataclass(frozen=True)
class Budget:
    """A budget of one kind, granted every period, with its current period (times in
    nanoseconds since the Unix epoch; 0 when no period is open)."""

    id: str
    tenant: str
    kind: str
    amount: int
    period: str
    rollover_percent: int
    created_ns: int
    period_start_ns: int
    period_end_ns: int
    granted: int
    carried_in: int
    #: Budget tokens of the current period not spent yet.
    unspent: int
    #: At most this many lapse at period_end_ns; up to `rolls_over` carry into the next period.
    lapses: int
    rolls_over: int

    @classmethod
    def from_proto(cls, message: quota_pb2.Budget) -> Budget:
        return cls(
            id=message.id,
            tenant=message.tenant,
            kind=kind_label(message.kind),
            amount=message.amount,
            period=_enum_label(quota_pb2.BudgetPeriod, message.period, "BUDGET_PERIOD_"),
            rollover_percent=message.rollover_percent,
            created_ns=message.created_ns,
            period_start_ns=message.period_start_ns,
            period_end_ns=message.period_end_ns,
            granted=message.granted,
            carried_in=message.carried_in,
            unspent=message.unspent,
            lapses=message.lapses,
            rolls_over=message.rolls_over,
        )


@dataclass(frozen=True)
class UsageRow:
    """Sums of one tenant, group and kind over a report's range."""

    tenant: str
    #: A date (the first day of the day, week or month), a node id, or "" (by kind).
    group: str
    kind: str
    reserved: int
    settled: int
    released: int
    refunded: int
    granted: int
    lapsed: int

    @classmethod
    def from_proto(cls, message: quota_pb2.UsageRow) -> UsageRow:
        return cls(
            tenant=message.tenant,
            group=message.group,
            kind=kind_label(message.kind),
            reserved=message.reserved,
            settled=message.settled,
            released=message.released,
            refunded=message.refunded,
            granted=message.granted,
            lapsed=message.lapsed,
        )
