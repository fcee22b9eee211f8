"""The broker's own tables (SQLModel): tenants and API keys.

Owns: the shape of identity data. API keys are stored only as SHA-256 hashes of their secret
part (orbitq.services.identity.api_keys explains why a fast hash is right for random keys).
Does not own: the ledger's tables (orbitq.ledger.tables) or any query logic.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, LargeBinary, String
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
