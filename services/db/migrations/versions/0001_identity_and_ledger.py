"""Identity (tenants, API keys) and the ledger (accounts, transfers, pending, log, checkpoints).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_big_key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(63), sa.ForeignKey("tenants.name"), nullable=True),
        sa.Column("node", sa.String(32), nullable=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("revoked_ns", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])
    op.create_table(
        "ledger_accounts",
        sa.Column("id", _big_key, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("tenant", sa.String(63), nullable=True),
        sa.Column("system", sa.SmallInteger, nullable=True),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("timestamp_ns", sa.BigInteger, nullable=False),
        sa.Column("debits_pending", sa.BigInteger, nullable=False),
        sa.Column("debits_posted", sa.BigInteger, nullable=False),
        sa.Column("credits_pending", sa.BigInteger, nullable=False),
        sa.Column("credits_posted", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ux_ledger_accounts_tenant_kind", "ledger_accounts", ["tenant", "kind"], unique=True
    )
    op.create_index(
        "ux_ledger_accounts_system_kind", "ledger_accounts", ["system", "kind"], unique=True
    )
    op.create_table(
        "ledger_transfers",
        sa.Column("id", sa.LargeBinary(16), primary_key=True),
        sa.Column("debit_account_id", sa.BigInteger, nullable=False),
        sa.Column("credit_account_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("pending_id", sa.LargeBinary(16), nullable=True),
        sa.Column("user_data", sa.LargeBinary(32), nullable=True),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("code", sa.SmallInteger, nullable=False),
        sa.Column("flags", sa.SmallInteger, nullable=False),
        sa.Column("timeout_seconds", sa.BigInteger, nullable=False),
        sa.Column("timestamp_ns", sa.BigInteger, nullable=False),
        sa.Column("result", sa.SmallInteger, nullable=False),
        sa.Column("released", sa.BigInteger, nullable=False),
        sa.Column("entry_index", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ix_ledger_transfers_debit", "ledger_transfers", ["debit_account_id", "timestamp_ns"]
    )
    op.create_index(
        "ix_ledger_transfers_credit", "ledger_transfers", ["credit_account_id", "timestamp_ns"]
    )
    op.create_index(
        "ix_ledger_transfers_timestamp", "ledger_transfers", ["timestamp_ns"], unique=True
    )
    op.create_index("ix_ledger_transfers_pending_id", "ledger_transfers", ["pending_id"])
    op.create_table(
        "ledger_pending",
        sa.Column("id", sa.LargeBinary(16), primary_key=True),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("expires_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ledger_pending_open", "ledger_pending", ["status", "expires_ns"])
    op.create_table(
        "ledger_entries",
        sa.Column("idx", _big_key, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("hashes", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("size", _big_key, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("timestamp_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("last_timestamp_ns", sa.BigInteger, nullable=False),
        sa.Column("next_account_id", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "ledger_head",
        "ledger_checkpoints",
        "ledger_entries",
        "ledger_pending",
        "ledger_transfers",
        "ledger_accounts",
        "api_keys",
        "tenants",
    ):
        op.drop_table(table)
