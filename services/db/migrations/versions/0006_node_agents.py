"""Node agents: enrollment, tickets, receipts, refusals, blobs and result uploads; the facts a
usage receipt adds to a request, and the node of its placement.

Revision ID: 0006
Revises: 0005

`placed_node` is filled from the stored placements, so a data directory from before keeps
answering the agents' queries.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NODE = 16
REQUEST = 32
DIGEST = 64
TENANT = 63


def _id_column(name: str, length: int, target: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), sa.ForeignKey(target), primary_key=True)


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("placed_node", sa.String(NODE), nullable=True))
        batch.add_column(
            sa.Column("fault", sa.SmallInteger, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column("outcome", sa.SmallInteger, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("receipt_digest", sa.LargeBinary(32), nullable=True))
        batch.add_column(sa.Column("result_digest", sa.String(DIGEST), nullable=True))
        batch.add_column(
            sa.Column("result_bytes", sa.BigInteger, nullable=False, server_default=sa.text("0"))
        )
        batch.create_index("ix_requests_node_state", ["placed_node", "state"])
    requests = sa.table(
        "requests",
        sa.column("id", sa.String),
        sa.column("placement", sa.Text),
        sa.column("placed_node", sa.String),
    )
    connection = op.get_bind()
    placed = connection.execute(
        sa.select(requests.c.id, requests.c.placement).where(requests.c.placement.is_not(None))
    ).all()
    for request_id, placement in placed:
        connection.execute(
            sa.update(requests)
            .where(requests.c.id == request_id)
            .values(placed_node=json.loads(placement)["node"])
        )

    op.create_table(
        "node_agents",
        _id_column("node", NODE, "nodes.id"),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("key_id", sa.LargeBinary(4), nullable=False),
        sa.Column("ground_link", sa.String(16), nullable=False),
        sa.Column("fuel_per_core_second", sa.BigInteger, nullable=False),
        sa.Column("runtime", sa.String(64), nullable=False),
        sa.Column("enrolled_ns", sa.BigInteger, nullable=False),
        sa.Column("key_entry_index", sa.BigInteger, nullable=False),
        sa.Column("api_key_id", sa.String(32), nullable=False),
        sa.Column("last_heartbeat_ns", sa.BigInteger, nullable=True),
        sa.Column("missed_contacts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "degraded_by_broker", sa.Boolean, nullable=False, server_default=sa.text("false")
        ),
    )
    op.create_table(
        "enrollment_tokens",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("node", sa.String(NODE), sa.ForeignKey("nodes.id"), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("ground_link", sa.String(16), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("expires_ns", sa.BigInteger, nullable=False),
        sa.Column("used_public_key", sa.LargeBinary(32), nullable=True),
        sa.Column("used_ns", sa.BigInteger, nullable=True),
        sa.Column("replaced_ns", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_enrollment_tokens_node", "enrollment_tokens", ["node"])
    op.create_table(
        "request_tickets",
        _id_column("request_id", REQUEST, "requests.id"),
        sa.Column("placement_sequence", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("node", sa.String(NODE), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("workload_digest", sa.String(DIGEST), nullable=False),
        sa.Column("input_digest", sa.String(DIGEST), nullable=True),
        sa.Column("fuel_max", sa.BigInteger, nullable=False),
        sa.Column("output_bytes_max", sa.BigInteger, nullable=False),
        sa.Column("start_s", sa.BigInteger, nullable=False),
        sa.Column("uplink_seconds", sa.BigInteger, nullable=False),
        sa.Column("issued_ns", sa.BigInteger, nullable=False),
        sa.Column("pulled_ns", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_request_tickets_node", "request_tickets", ["node", "issued_ns"])
    op.create_table(
        "request_receipts",
        _id_column("request_id", REQUEST, "requests.id"),
        sa.Column("digest", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("node", sa.String(NODE), nullable=False),
        sa.Column("node_public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("key_entry_index", sa.BigInteger, nullable=False),
        sa.Column("received_ns", sa.BigInteger, nullable=False),
        sa.Column("entry_index", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "receipt_refusals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("node", sa.String(NODE), nullable=False),
        sa.Column("request_id", sa.String(REQUEST), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_receipt_refusals_at", "receipt_refusals", ["at_ns"])
    op.create_table(
        "ticket_refusals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("node", sa.String(NODE), nullable=False),
        sa.Column("request_id", sa.String(REQUEST), nullable=False),
        sa.Column("ticket_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("reason", sa.SmallInteger, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("refused_ns", sa.BigInteger, nullable=False),
        sa.Column("recorded_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ticket_refusals_at", "ticket_refusals", ["recorded_ns"])
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(DIGEST), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "blob_refs",
        _id_column("digest", DIGEST, "blobs.digest"),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("ref", sa.String(TENANT), primary_key=True),
        sa.Column("tenant", sa.String(TENANT), sa.ForeignKey("tenants.name"), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_blob_refs_tenant", "blob_refs", ["tenant", "digest"])
    op.create_table(
        "result_uploads",
        _id_column("request_id", REQUEST, "requests.id"),
        sa.Column("node", sa.String(NODE), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("opened_ns", sa.BigInteger, nullable=False),
        sa.Column("completed_ns", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    for table in (
        "result_uploads",
        "blob_refs",
        "blobs",
        "ticket_refusals",
        "receipt_refusals",
        "request_receipts",
        "request_tickets",
        "enrollment_tokens",
        "node_agents",
    ):
        op.drop_table(table)
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_node_state")
        for column in (
            "result_bytes",
            "result_digest",
            "receipt_digest",
            "outcome",
            "fault",
            "placed_node",
        ):
            batch.drop_column(column)
