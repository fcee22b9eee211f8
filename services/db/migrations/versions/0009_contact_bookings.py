"""Contact plans booked from ground networks: per-station modes and the booked windows.

Revision ID: 0009
Revises: 0007

(0008 is reserved for work merged separately; when it lands, this revision follows it.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "station_bookings",
        sa.Column("station", sa.String(63), sa.ForeignKey("stations.id"), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("imported_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "booked_contacts",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("node", sa.String(16), sa.ForeignKey("nodes.id"), nullable=False),
        sa.Column("station", sa.String(63), sa.ForeignKey("stations.id"), nullable=False),
        sa.Column("aos_ns", sa.BigInteger, nullable=False),
        sa.Column("los_ns", sa.BigInteger, nullable=False),
        sa.Column("antenna", sa.Integer, nullable=False),
        sa.Column("uplink_mbps", sa.Double, nullable=False),
        sa.Column("downlink_mbps", sa.Double, nullable=False),
        sa.Column("max_elevation_deg", sa.Double, nullable=False),
        sa.Column("visible_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_booked_contacts_station_aos", "booked_contacts", ["station", "aos_ns"])
    op.create_index("ix_booked_contacts_aos", "booked_contacts", ["aos_ns"])


def downgrade() -> None:
    op.drop_table("booked_contacts")
    op.drop_table("station_bookings")
