"""The contact plan's row counts changes to nodes and stations.

Revision ID: 0004
Revises: 0003

Schedulers asked "has the world changed?" by hashing every node and station row each cycle;
a counter bumped by the writers (who already hold the plan row's lock) answers it from one row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_plan") as batch:
        batch.add_column(
            sa.Column("world_revision", sa.BigInteger, nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_plan") as batch:
        batch.drop_column("world_revision")
