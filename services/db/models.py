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
