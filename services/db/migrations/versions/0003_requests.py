"""Service requests and their state transitions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(63), sa.ForeignKey("tenants.name"), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("reserved_cpu", sa.BigInteger, nullable=False),
        sa.Column("reserved_storage", sa.BigInteger, nullable=False),
        sa.Column("reserved_link", sa.BigInteger, nullable=False),
        sa.Column("settled_cpu", sa.BigInteger, nullable=False),
        sa.Column("settled_storage", sa.BigInteger, nullable=False),
        sa.Column("settled_link", sa.BigInteger, nullable=False),
        sa.Column("reservation_open", sa.Boolean, nullable=False),
        sa.Column("placement", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("placement_reasons", sa.Text, nullable=True),
        sa.Column("submitted_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
        sa.Column("ended_ns", sa.BigInteger, nullable=True),
        sa.Column("due_s", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ux_requests_tenant_key", "requests", ["tenant", "idempotency_key"], unique=True
    )
    op.create_index("ix_requests_state_due", "requests", ["state", "due_s"])
    op.create_index("ix_requests_tenant_submitted", "requests", ["tenant", "submitted_ns"])
    op.create_index("ix_requests_submitted", "requests", ["submitted_ns"])
    op.create_index("ix_requests_state_ended", "requests", ["state", "ended_ns"])
    op.create_table(
        "request_transitions",
        sa.Column("request_id", sa.String(32), sa.ForeignKey("requests.id"), primary_key=True),
        sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("from_state", sa.SmallInteger, nullable=False),
        sa.Column("to_state", sa.SmallInteger, nullable=False),
        sa.Column("at_ns", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("request_transitions")
    op.drop_table("requests")
