"""The identity rows: table handles for tenants and API keys, and rows <-> values.

Owns: the Core handles of the `tenants` and `api_keys` tables (declared with SQLModel in
orbitq.services.db.models) and the exact conversions from their rows to `TenantRecord` and
`ApiKeyRecord`, the values the broker passes around (a key's secret hash stays in the table:
only the authenticator reads it).
Does not own: any rule (orbitq.services.tenants, orbitq.services.auth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from orbitq.services.db import models  # noqa: F401  (registers the tables)
from orbitq.services.identity.api_keys import Role

TENANTS: sa.Table = SQLModel.metadata.tables["tenants"]
API_KEYS: sa.Table = SQLModel.metadata.tables["api_keys"]


@dataclass(frozen=True, slots=True)
class TenantRecord:
    name: str
    display_name: str
    created_ns: int


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    role: Role
    tenant: str | None
    node: str | None
    label: str
    created_ns: int
    revoked_ns: int | None


def tenant_of(row: sa.Row[Any]) -> TenantRecord:
    return TenantRecord(row.name, row.display_name, row.created_ns)


def api_key_of(row: sa.Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        role=Role(row.role),
        tenant=row.tenant,
        node=row.node,
        label=row.label,
        created_ns=row.created_ns,
        revoked_ns=row.revoked_ns,
    )
