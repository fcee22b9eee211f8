"""Each node row remembers the world revision of its last write.

Revision ID: 0011
Revises: 0010

The scheduler learnt that the world changed from the contact plan's `world_revision`, then read
every node to find what: O(nodes) per state change (about a second at 30,000 nodes). With
`revision` set by every writer of a node (in the transaction that bumps the counter), it reads
only `nodes WHERE revision > seen`: one row for one state change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(
            sa.Column("revision", sa.BigInteger, nullable=False, server_default=sa.text("0"))
        )
    op.create_index("ix_nodes_revision", "nodes", ["revision"])


def downgrade() -> None:
    op.drop_index("ix_nodes_revision", "nodes")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("revision")
