"""The constellation: nodes, ground stations, contact windows and the contact plan's head row.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("norad_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("tle_line1", sa.String(69), nullable=True),
        sa.Column("tle_line2", sa.String(69), nullable=True),
        sa.Column("mean_elements", sa.Text, nullable=False),
        sa.Column("epoch_ns", sa.BigInteger, nullable=False),
        sa.Column("cpu_millicores", sa.Integer, nullable=False),
        sa.Column("storage_mb", sa.Integer, nullable=False),
        sa.Column("downlink_mbps", sa.Integer, nullable=False),
        sa.Column("uplink_mbps", sa.Integer, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "stations",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("latitude_deg", sa.Double, nullable=False),
        sa.Column("longitude_deg", sa.Double, nullable=False),
        sa.Column("altitude_m", sa.Double, nullable=False),
        sa.Column("min_elevation_deg", sa.Double, nullable=False),
        sa.Column("antennas", sa.Integer, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("downlink_mbps", sa.Double, nullable=False),
        sa.Column("uplink_mbps", sa.Double, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("node", sa.String(16), sa.ForeignKey("nodes.id"), nullable=False),
        sa.Column("station", sa.String(63), sa.ForeignKey("stations.id"), nullable=False),
        sa.Column("aos_ns", sa.BigInteger, nullable=False),
        sa.Column("los_ns", sa.BigInteger, nullable=False),
        sa.Column("max_elevation_deg", sa.Double, nullable=False),
    )
    op.create_index("ix_contacts_node_aos", "contacts", ["node", "aos_ns"])
    op.create_index("ix_contacts_station_aos", "contacts", ["station", "aos_ns"])
    op.create_index("ix_contacts_aos", "contacts", ["aos_ns"])
    plan = op.create_table(
        "contact_plan",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("horizon_start_ns", sa.BigInteger, nullable=False),
        sa.Column("horizon_end_ns", sa.BigInteger, nullable=False),
        sa.Column("refreshed_ns", sa.BigInteger, nullable=False),
        sa.Column("longest_contact_ns", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        plan,
        [
            {
                "id": 1,
                "version": 0,
                "horizon_start_ns": 0,
                "horizon_end_ns": 0,
                "refreshed_ns": 0,
                "longest_contact_ns": 0,
            }
        ],
    )


def downgrade() -> None:
    for table in ("contact_plan", "contacts", "stations", "nodes"):
        op.drop_table(table)
