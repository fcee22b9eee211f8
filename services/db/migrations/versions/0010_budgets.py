"""Budgets granted per period, and their periods (orbitq.services.budgets).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(63), sa.ForeignKey("tenants.name"), nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("period", sa.SmallInteger, nullable=False),
        sa.Column("rollover_percent", sa.SmallInteger, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ux_budgets_tenant_kind", "budgets", ["tenant", "kind"], unique=True)
    op.create_table(
        "budget_periods",
        sa.Column("budget_id", sa.String(32), sa.ForeignKey("budgets.id"), primary_key=True),
        sa.Column("start_ns", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("granted", sa.BigInteger, nullable=False),
        sa.Column("carried_in", sa.BigInteger, nullable=False),
        sa.Column("rollover_percent", sa.SmallInteger, nullable=False),
        sa.Column("closed", sa.Boolean, nullable=False),
        sa.Column("lapsed", sa.BigInteger, nullable=False),
        sa.Column("carried_out", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_budget_periods_open", "budget_periods", ["closed", "end_ns"])


def downgrade() -> None:
    op.drop_table("budget_periods")
    op.drop_table("budgets")
