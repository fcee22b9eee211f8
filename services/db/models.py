"""The broker's own tables (SQLModel): tenants and API keys; nodes, stations and contacts;
service requests and their transitions.

Owns: the shape of identity data and of the constellation. API keys are stored only as SHA-256
hashes of their secret part (orbitq.services.identity.api_keys explains why a fast hash is right
for random keys). A node keeps its element set so that `ElementSet` is rebuilt exactly: the TLE
lines when it came from TLE, and always the mean elements as exact JSON numbers.
Does not own: the ledger's tables (orbitq.ledger.store.tables) or any query logic (the
constellation's is in orbitq.services.constellation). Migrations create exactly these tables; a
test compares.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

TENANT_NAME_CHARS_MAX = 63
DISPLAY_NAME_CHARS_MAX = 200
LABEL_CHARS_MAX = 200


class TenantRow(SQLModel, table=True):
    __tablename__ = "tenants"

    name: str = Field(sa_column=Column(String(TENANT_NAME_CHARS_MAX), primary_key=True))
    display_name: str = Field(sa_column=Column(String(DISPLAY_NAME_CHARS_MAX), nullable=False))
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_keys"

    key_id: str = Field(sa_column=Column(String(32), primary_key=True))
    # SHA-256 of the secret part of the key; the key itself is never stored.
    secret_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    tenant: str | None = Field(
        default=None,
        sa_column=Column(String(TENANT_NAME_CHARS_MAX), ForeignKey("tenants.name"), index=True),
    )
    node: str | None = Field(default=None, sa_column=Column(String(32)))
    label: str = Field(sa_column=Column(String(LABEL_CHARS_MAX), nullable=False))
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_ns: int | None = Field(default=None, sa_column=Column(BigInteger))


# -- the constellation -------------------------------------------------------------------------

NODE_ID_CHARS_MAX = 16
STATION_ID_CHARS_MAX = 63
NODE_NAME_CHARS_MAX = 128
TLE_LINE_CHARS = 69
CONTACT_ID_CHARS_MAX = 128


class NodeRow(SQLModel, table=True):
    """A satellite with a computer; `id` is its NORAD catalog number in decimal."""

    __tablename__ = "nodes"

    id: str = Field(sa_column=Column(String(NODE_ID_CHARS_MAX), primary_key=True))
    norad_id: int = Field(sa_column=Column(Integer, nullable=False))
    name: str = Field(sa_column=Column(String(NODE_NAME_CHARS_MAX), nullable=False))
    # The TLE lines as imported (None for a node imported from OMM).
    tle_line1: str | None = Field(default=None, sa_column=Column(String(TLE_LINE_CHARS)))
    tle_line2: str | None = Field(default=None, sa_column=Column(String(TLE_LINE_CHARS)))
    # The mean elements (every ElementSet field but the lines) as JSON; floats round-trip exactly.
    mean_elements: str = Field(sa_column=Column(Text, nullable=False))
    epoch_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    cpu_millicores: int = Field(sa_column=Column(Integer, nullable=False))
    storage_mb: int = Field(sa_column=Column(Integer, nullable=False))
    downlink_mbps: int = Field(sa_column=Column(Integer, nullable=False))
    uplink_mbps: int = Field(sa_column=Column(Integer, nullable=False))
    labels: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # ready | degraded | down
    state: str = Field(sa_column=Column(String(16), nullable=False))
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The contact plan's `world_revision` of the last write to this node (or its agent), so
    # the scheduler reads only the nodes changed since its copy (`revision > seen`).
    revision: int = Field(sa_column=Column(BigInteger, nullable=False, server_default=text("0")))

    __table_args__ = (Index("ix_nodes_revision", "revision"),)


class StationRow(SQLModel, table=True):
    __tablename__ = "stations"

    id: str = Field(sa_column=Column(String(STATION_ID_CHARS_MAX), primary_key=True))
    name: str = Field(sa_column=Column(String(NODE_NAME_CHARS_MAX), nullable=False))
    latitude_deg: float = Field(sa_column=Column(Double, nullable=False))
    longitude_deg: float = Field(sa_column=Column(Double, nullable=False))
    altitude_m: float = Field(sa_column=Column(Double, nullable=False))
    min_elevation_deg: float = Field(sa_column=Column(Double, nullable=False))
    antennas: int = Field(sa_column=Column(Integer, nullable=False))
    labels: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    downlink_mbps: float = Field(sa_column=Column(Double, nullable=False))
    uplink_mbps: float = Field(sa_column=Column(Double, nullable=False))
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class ContactRow(SQLModel, table=True):
    """`node` sees `station` during [aos_ns, los_ns); the id stays the same across refreshes."""

    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_node_aos", "node", "aos_ns"),
        Index("ix_contacts_station_aos", "station", "aos_ns"),
        Index("ix_contacts_aos", "aos_ns"),
    )

    id: str = Field(sa_column=Column(String(CONTACT_ID_CHARS_MAX), primary_key=True))
    node: str = Field(
        sa_column=Column(String(NODE_ID_CHARS_MAX), ForeignKey("nodes.id"), nullable=False)
    )
    station: str = Field(
        sa_column=Column(String(STATION_ID_CHARS_MAX), ForeignKey("stations.id"), nullable=False)
    )
    aos_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    los_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    max_elevation_deg: float = Field(sa_column=Column(Double, nullable=False))


class ContactPlanRow(SQLModel, table=True):
    """One row: what the last refresh of the contact plan covered.

    Every write to the constellation locks it first, which serialises writers across broker
    replicas on PostgreSQL; `version` counts refreshes, so a refresh that computed against a
    plan another replica has since replaced does not apply. `world_revision` counts the
    write transactions that changed nodes or stations (the same lock orders them), so a
    reader learns whether its copy of the world is current from this one row."""

    __tablename__ = "contact_plan"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
    horizon_start_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    horizon_end_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    refreshed_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    # An upper bound on (los - aos) of any stored contact, so "overlapping [start, end)" can
    # use the aos index: aos >= start - longest.
    longest_contact_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    world_revision: int = Field(
        sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )


CONTACT_PLAN_MODE_CHARS_MAX = 16


class StationBookingRow(SQLModel, table=True):
    """A station whose contacts come from a booked plan (orbitq.services.constellation.booked):
    `mode` is "replace" or "restrict"."""

    __tablename__ = "station_bookings"

    station: str = Field(
        sa_column=Column(String(STATION_ID_CHARS_MAX), ForeignKey("stations.id"), primary_key=True)
    )
    mode: str = Field(sa_column=Column(String(CONTACT_PLAN_MODE_CHARS_MAX), nullable=False))
    imported_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class BookedContactRow(SQLModel, table=True):
    """A window booked from a ground network: `node` may use `station` during [aos_ns, los_ns).
    Rates of 0 and antenna 0 are "not given"; `visible_ns` is how much of the window the
    computed geometry saw the satellite at import."""

    __tablename__ = "booked_contacts"
    __table_args__ = (
        Index("ix_booked_contacts_station_aos", "station", "aos_ns"),
        Index("ix_booked_contacts_aos", "aos_ns"),
    )

    id: str = Field(sa_column=Column(String(CONTACT_ID_CHARS_MAX), primary_key=True))
    node: str = Field(
        sa_column=Column(String(NODE_ID_CHARS_MAX), ForeignKey("nodes.id"), nullable=False)
    )
    station: str = Field(
        sa_column=Column(String(STATION_ID_CHARS_MAX), ForeignKey("stations.id"), nullable=False)
    )
    aos_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    los_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    antenna: int = Field(sa_column=Column(Integer, nullable=False))
    uplink_mbps: float = Field(sa_column=Column(Double, nullable=False))
    downlink_mbps: float = Field(sa_column=Column(Double, nullable=False))
    max_elevation_deg: float = Field(sa_column=Column(Double, nullable=False))
    visible_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


# -- service requests --------------------------------------------------------------------------

REQUEST_ID_CHARS = 32
IDEMPOTENCY_KEY_CHARS_MAX = 128


class RequestRow(SQLModel, table=True):
    """A tenant's service request (orbitq.services.requests owns the meaning of each column).

    `spec` and `placement` are JSON written by orbitq.services.requests.store (sorted keys,
    integer seconds). `due_s` is when time alone next moves the request (the deadline while it
    waits, the start once placed, the finish once running; NULL when terminal), so the job
    that advances time reads only what is due through the (state, due_s) index."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ux_requests_tenant_key", "tenant", "idempotency_key", unique=True),
        Index("ix_requests_state_due", "state", "due_s"),
        Index("ix_requests_tenant_submitted", "tenant", "submitted_ns"),
        Index("ix_requests_submitted", "submitted_ns"),
        Index("ix_requests_state_ended", "state", "ended_ns"),
        Index("ix_requests_node_state", "placed_node", "state"),
    )

    # 128 bits as 32 lower-case hex digits.
    id: str = Field(sa_column=Column(String(REQUEST_ID_CHARS), primary_key=True))
    tenant: str = Field(
        sa_column=Column(String(TENANT_NAME_CHARS_MAX), ForeignKey("tenants.name"), nullable=False)
    )
    idempotency_key: str = Field(
        sa_column=Column(String(IDEMPOTENCY_KEY_CHARS_MAX), nullable=False)
    )
    spec: str = Field(sa_column=Column(Text, nullable=False))
    # orbitq.services.requests.RequestState (= orbitq.v1.RequestState).
    state: int = Field(sa_column=Column(SmallInteger, nullable=False))
    # The sequence number of the latest transition (1 for the first).
    sequence: int = Field(sa_column=Column(Integer, nullable=False))
    reserved_cpu: int = Field(sa_column=Column(BigInteger, nullable=False))
    reserved_storage: int = Field(sa_column=Column(BigInteger, nullable=False))
    reserved_link: int = Field(sa_column=Column(BigInteger, nullable=False))
    settled_cpu: int = Field(sa_column=Column(BigInteger, nullable=False))
    settled_storage: int = Field(sa_column=Column(BigInteger, nullable=False))
    settled_link: int = Field(sa_column=Column(BigInteger, nullable=False))
    # True while the ledger still holds this request's pending reservation.
    reservation_open: bool = Field(sa_column=Column(Boolean, nullable=False))
    placement: str | None = Field(default=None, sa_column=Column(Text))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    placement_reasons: str | None = Field(default=None, sa_column=Column(Text))
    submitted_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    ended_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    due_s: int | None = Field(default=None, sa_column=Column(BigInteger))
    # The node of its placement while it has one (the node agent's queries read it).
    placed_node: str | None = Field(default=None, sa_column=Column(String(NODE_ID_CHARS_MAX)))
    # orbitq.v1.Fault of a FAILED request (0: none), and the usage receipt's facts once one
    # came (orbitq.v1.RunOutcome, its SHA-256, the result's SHA-256 in hex and size).
    fault: int = Field(sa_column=Column(SmallInteger, nullable=False, server_default=text("0")))
    outcome: int = Field(sa_column=Column(SmallInteger, nullable=False, server_default=text("0")))
    receipt_digest: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32)))
    result_digest: str | None = Field(default=None, sa_column=Column(String(64)))
    result_bytes: int = Field(
        sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )


class RequestTransitionRow(SQLModel, table=True):
    """One state change of a request; (request_id, sequence) numbers them from 1 without gaps."""

    __tablename__ = "request_transitions"

    request_id: str = Field(
        sa_column=Column(String(REQUEST_ID_CHARS), ForeignKey("requests.id"), primary_key=True)
    )
    sequence: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    # 0 for the first transition (the request came into existence).
    from_state: int = Field(sa_column=Column(SmallInteger, nullable=False))
    to_state: int = Field(sa_column=Column(SmallInteger, nullable=False))
    at_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))


# -- node agents (issue 11; orbitq.services.agents owns the meaning of each column) ------------

PUBLIC_KEY_BYTES = 32
SHA256_BYTES = 32
# A blob's content address as stored: 64 lower-case hex digits (the API adds "sha256:").
DIGEST_HEX_CHARS = 64
RUNTIME_CHARS_MAX = 64
GROUND_LINK_CHARS_MAX = 16
REFUSAL_REASON_CHARS_MAX = 32


class NodeAgentRow(SQLModel, table=True):
    """The agent enrolled for a node: its current key, rate and runtime, its credential and its
    health. A re-enrollment replaces the row (the signed log keeps every key)."""

    __tablename__ = "node_agents"

    node: str = Field(
        sa_column=Column(String(NODE_ID_CHARS_MAX), ForeignKey("nodes.id"), primary_key=True)
    )
    public_key: bytes = Field(sa_column=Column(LargeBinary(PUBLIC_KEY_BYTES), nullable=False))
    # `orbitq.ledger.note.key_id(node, public_key)`: the kid of the node's receipts.
    key_id: bytes = Field(sa_column=Column(LargeBinary(4), nullable=False))
    # contacts | always
    ground_link: str = Field(sa_column=Column(String(GROUND_LINK_CHARS_MAX), nullable=False))
    fuel_per_core_second: int = Field(sa_column=Column(BigInteger, nullable=False))
    runtime: str = Field(sa_column=Column(String(RUNTIME_CHARS_MAX), nullable=False))
    enrolled_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The NodeKeyEnrolled entry of this key in the signed log.
    key_entry_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The node credential (an API key of role node) issued at enrollment.
    api_key_id: str = Field(sa_column=Column(String(32), nullable=False))
    last_heartbeat_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    # Contacts that ended without a heartbeat since the last one, as the health job counted.
    missed_contacts: int = Field(
        sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    # The broker (not an operator) degraded the node for missed contacts: a heartbeat may
    # bring it back to ready.
    degraded_by_broker: bool = Field(
        sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )


class EnrollmentTokenRow(SQLModel, table=True):
    """A one-time enrollment token (`oqe_<token id>_<secret>`), stored as a hash."""

    __tablename__ = "enrollment_tokens"

    token_id: str = Field(sa_column=Column(String(32), primary_key=True))
    node: str = Field(
        sa_column=Column(
            String(NODE_ID_CHARS_MAX), ForeignKey("nodes.id"), nullable=False, index=True
        )
    )
    secret_hash: bytes = Field(sa_column=Column(LargeBinary(SHA256_BYTES), nullable=False))
    ground_link: str = Field(sa_column=Column(String(GROUND_LINK_CHARS_MAX), nullable=False))
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The key the token enrolled (a retry with the same key re-issues the credential).
    used_public_key: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary(PUBLIC_KEY_BYTES))
    )
    used_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    # A newer token for the node replaced this one.
    replaced_ns: int | None = Field(default=None, sa_column=Column(BigInteger))


class RequestTicketRow(SQLModel, table=True):
    """The signed ticket of one placement of a request, made once at the first pull and
    returned byte for byte at every later pull. `placement_sequence` is the request's sequence
    number at its PLACED transition, so each placement has its own ticket."""

    __tablename__ = "request_tickets"
    __table_args__ = (Index("ix_request_tickets_node", "node", "issued_ns"),)

    request_id: str = Field(
        sa_column=Column(String(REQUEST_ID_CHARS), ForeignKey("requests.id"), primary_key=True)
    )
    placement_sequence: int = Field(
        sa_column=Column(Integer, primary_key=True, autoincrement=False)
    )
    node: str = Field(sa_column=Column(String(NODE_ID_CHARS_MAX), nullable=False))
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    digest: bytes = Field(sa_column=Column(LargeBinary(SHA256_BYTES), nullable=False))
    workload_digest: str = Field(sa_column=Column(String(DIGEST_HEX_CHARS), nullable=False))
    input_digest: str | None = Field(default=None, sa_column=Column(String(DIGEST_HEX_CHARS)))
    fuel_max: int = Field(sa_column=Column(BigInteger, nullable=False))
    output_bytes_max: int = Field(sa_column=Column(BigInteger, nullable=False))
    start_s: int = Field(sa_column=Column(BigInteger, nullable=False))
    uplink_seconds: int = Field(sa_column=Column(BigInteger, nullable=False))
    issued_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    pulled_ns: int | None = Field(default=None, sa_column=Column(BigInteger))


class RequestReceiptRow(SQLModel, table=True):
    """The usage receipt a request was settled (or failed) by, exactly as the node signed it,
    with the key that verified it. Written in the transaction of the request's transition."""

    __tablename__ = "request_receipts"

    request_id: str = Field(
        sa_column=Column(String(REQUEST_ID_CHARS), ForeignKey("requests.id"), primary_key=True)
    )
    digest: bytes = Field(sa_column=Column(LargeBinary(SHA256_BYTES), nullable=False, unique=True))
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    node: str = Field(sa_column=Column(String(NODE_ID_CHARS_MAX), nullable=False))
    node_public_key: bytes = Field(sa_column=Column(LargeBinary(PUBLIC_KEY_BYTES), nullable=False))
    key_entry_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    received_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The ReceiptRecorded entry, once the settlement is in the ledger (None: not yet, or the
    # run was aborted and nothing was charged against it).
    entry_index: int | None = Field(default=None, sa_column=Column(BigInteger))


class ReceiptRefusalRow(SQLModel, table=True):
    """A usage receipt the broker refused (nothing was settled against it)."""

    __tablename__ = "receipt_refusals"
    __table_args__ = (Index("ix_receipt_refusals_at", "at_ns"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    node: str = Field(sa_column=Column(String(NODE_ID_CHARS_MAX), nullable=False))
    # The request the receipt names, when it could be read.
    request_id: str = Field(sa_column=Column(String(REQUEST_ID_CHARS), nullable=False))
    digest: bytes = Field(sa_column=Column(LargeBinary(SHA256_BYTES), nullable=False))
    reason: str = Field(sa_column=Column(String(REFUSAL_REASON_CHARS_MAX), nullable=False))
    detail: str = Field(sa_column=Column(Text, nullable=False))
    at_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class TicketRefusalRow(SQLModel, table=True):
    """A ticket an agent refused, as its heartbeat reported it."""

    __tablename__ = "ticket_refusals"
    __table_args__ = (Index("ix_ticket_refusals_at", "recorded_ns"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    node: str = Field(sa_column=Column(String(NODE_ID_CHARS_MAX), nullable=False))
    request_id: str = Field(sa_column=Column(String(REQUEST_ID_CHARS), nullable=False))
    ticket_digest: bytes = Field(sa_column=Column(LargeBinary(SHA256_BYTES), nullable=False))
    # orbitq.v1.TicketRefusalReason
    reason: int = Field(sa_column=Column(SmallInteger, nullable=False))
    detail: str = Field(sa_column=Column(Text, nullable=False))
    # The agent's clock when it refused, and the broker's when it heard.
    refused_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    recorded_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


# -- blobs (orbitq.services.blobs) --------------------------------------------------------------


class BlobRow(SQLModel, table=True):
    """A content-addressed file under <data_dir>/blobs/: a module, an input or a result."""

    __tablename__ = "blobs"

    digest: str = Field(sa_column=Column(String(DIGEST_HEX_CHARS), primary_key=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class BlobRefRow(SQLModel, table=True):
    """Who may read a blob and why it is kept: a tenant's workload or input (`ref` = the
    tenant), or a request's result (`ref` = the request id). A blob no ref names is deleted."""

    __tablename__ = "blob_refs"
    __table_args__ = (Index("ix_blob_refs_tenant", "tenant", "digest"),)

    digest: str = Field(
        sa_column=Column(String(DIGEST_HEX_CHARS), ForeignKey("blobs.digest"), primary_key=True)
    )
    # workload | input | result
    kind: str = Field(sa_column=Column(String(16), primary_key=True))
    ref: str = Field(sa_column=Column(String(TENANT_NAME_CHARS_MAX), primary_key=True))
    tenant: str = Field(
        sa_column=Column(String(TENANT_NAME_CHARS_MAX), ForeignKey("tenants.name"), nullable=False)
    )
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class ResultUploadRow(SQLModel, table=True):
    """A result being downlinked into <data_dir>/blobs/partial/<request id>: its declared size
    and SHA-256; the partial file's length is where the upload continues."""

    __tablename__ = "result_uploads"

    request_id: str = Field(
        sa_column=Column(String(REQUEST_ID_CHARS), ForeignKey("requests.id"), primary_key=True)
    )
    node: str = Field(sa_column=Column(String(NODE_ID_CHARS_MAX), nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: bytes = Field(sa_column=Column(LargeBinary(SHA256_BYTES), nullable=False))
    opened_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    completed_ns: int | None = Field(default=None, sa_column=Column(BigInteger))


# -- budgets (orbitq.services.budgets owns the meaning of each column) ---------------------------

BUDGET_ID_CHARS = 32


class BudgetRow(SQLModel, table=True):
    """A tenant's budget of one kind: `amount` tokens granted at the start of every period
    (orbitq.services.budgets.periods.Period: 1 day, 2 week, 3 month), of which up to
    `rollover_percent` % may carry into the next period if unspent."""

    __tablename__ = "budgets"
    __table_args__ = (Index("ux_budgets_tenant_kind", "tenant", "kind", unique=True),)

    # 128 bits as 32 lower-case hex digits; part of its transfers' ids.
    id: str = Field(sa_column=Column(String(BUDGET_ID_CHARS), primary_key=True))
    tenant: str = Field(
        sa_column=Column(String(TENANT_NAME_CHARS_MAX), ForeignKey("tenants.name"), nullable=False)
    )
    kind: int = Field(sa_column=Column(SmallInteger, nullable=False))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    period: int = Field(sa_column=Column(SmallInteger, nullable=False))
    rollover_percent: int = Field(sa_column=Column(SmallInteger, nullable=False))
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class BudgetPeriodRow(SQLModel, table=True):
    """One period of a budget: opened by its grant transfer, closed by its lapse. Derived from
    the ledger (the transfers' ids are deterministic), so a lost row is rebuilt from it."""

    __tablename__ = "budget_periods"
    __table_args__ = (Index("ix_budget_periods_open", "closed", "end_ns"),)

    budget_id: str = Field(
        sa_column=Column(String(BUDGET_ID_CHARS), ForeignKey("budgets.id"), primary_key=True)
    )
    start_ns: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    end_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    granted: int = Field(sa_column=Column(BigInteger, nullable=False))
    carried_in: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The budget's rollover when the period opened: a change of terms applies from the next.
    rollover_percent: int = Field(sa_column=Column(SmallInteger, nullable=False))
    closed: bool = Field(sa_column=Column(Boolean, nullable=False))
    lapsed: int = Field(sa_column=Column(BigInteger, nullable=False))
    carried_out: int = Field(sa_column=Column(BigInteger, nullable=False))
