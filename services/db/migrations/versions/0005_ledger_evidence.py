"""The index of the evidence entries of the signed log (node keys and usage receipts).

Revision ID: 0005
Revises: 0004

Node agents enroll keys and report usage receipts; both become entries of the signed log
(docs/ledger-format.md E5). This table finds them by digest, by node and by request without
scanning the log; the audit checks it against the entries (V18).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# As orbitq.ledger.store.tables: SQLite makes a rowid alias only of "INTEGER PRIMARY KEY".
_big_key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_evidence",
        sa.Column("entry_index", _big_key, primary_key=True, autoincrement=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_ledger_evidence_digest", "ledger_evidence", ["digest"])
    op.create_index("ix_ledger_evidence_node", "ledger_evidence", ["node", "kind", "entry_index"])
    op.create_index("ix_ledger_evidence_request", "ledger_evidence", ["request_id"])


def downgrade() -> None:
    op.drop_table("ledger_evidence")
