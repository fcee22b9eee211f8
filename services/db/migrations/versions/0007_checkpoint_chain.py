"""The checkpoint chain: the head row records how many checkpoints the log stored and the newest.

Revision ID: 0007
Revises: 0006

Each checkpoint signed from now on carries an `orbitq-chain` line (docs/ledger-format.md L19)
naming its sequence number, its time and the checkpoint before it; the head row keeps the count
and the body hash of the newest, so the audit sees a deleted checkpoint (V19, V20). The head's
`last_timestamp_ns` becomes exactly the newest entry's timestamp (V20): before, it could run
ahead of the log by timestamps that rolled-back linked transfers had taken, which nothing
stored. Checkpoints signed before this revision keep their notes (signed, never rewritten);
they count in the sequence.
"""

from __future__ import annotations

from hashlib import sha256

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_head") as batch:
        batch.add_column(
            sa.Column("checkpoints", sa.BigInteger, nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("checkpoint_hash", sa.LargeBinary(32), nullable=True))
    connection = op.get_bind()
    if connection.exec_driver_sql("SELECT id FROM ledger_head WHERE id = 1").first() is None:
        return  # not initialised yet: the first checkpoint starts the chain
    count = connection.exec_driver_sql("SELECT COUNT(*) FROM ledger_checkpoints").scalar_one()
    newest = connection.exec_driver_sql(
        "SELECT note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
    ).first()
    # L19: a checkpoint's hash is SHA-256 of its body, the signed text before the blank line.
    body_hash = (
        sha256((str(newest[0]).rpartition("\n\n")[0] + "\n").encode("utf-8")).digest()
        if newest is not None
        else None
    )
    last = connection.exec_driver_sql(
        "SELECT data FROM ledger_entries ORDER BY idx DESC LIMIT 1"
    ).first()
    last_timestamp_ns = _timestamp_of(bytes(last[0])) if last is not None else 0
    head = sa.table(
        "ledger_head",
        sa.column("id", sa.Integer),
        sa.column("checkpoints", sa.BigInteger),
        sa.column("checkpoint_hash", sa.LargeBinary),
        sa.column("last_timestamp_ns", sa.BigInteger),
    )
    connection.execute(
        sa.update(head)
        .where(head.c.id == 1)
        .values(
            checkpoints=int(count),
            checkpoint_hash=body_hash,
            last_timestamp_ns=last_timestamp_ns,
        )
    )


def _timestamp_of(data: bytes) -> int:
    from orbitq.v1 import ledger_pb2

    return int(ledger_pb2.LedgerEntry.FromString(data).timestamp_ns)


def downgrade() -> None:
    with op.batch_alter_table("ledger_head") as batch:
        batch.drop_column("checkpoint_hash")
        batch.drop_column("checkpoints")
