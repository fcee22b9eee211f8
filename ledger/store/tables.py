"""Database tables of the ledger (SQLModel), identical on SQLite and PostgreSQL.

Owns: the shape of the stored ledger — accounts with their four balances, transfers (successes
and recorded transient failures), the status of pending transfers, the log entries with the
Merkle hashes kept beside each leaf, the index of the evidence entries, checkpoints, and the
one-row head that serialises appends.
Migrations (orbitq.services.db.migrations) create exactly these; a test compares them.

Does not own: queries (the other modules of orbitq.ledger.store) or the meaning of columns
(orbitq.ledger.model).
The log row stores the exact bytes that were hashed, so ORM defaults can never change what was
signed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

# SQLite makes a rowid alias only of "INTEGER PRIMARY KEY"; BIGINT keys there would cost an
# extra index. Both are 64-bit.
_BigKey = BigInteger().with_variant(Integer(), "sqlite")


class AccountRow(SQLModel, table=True):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        Index("ux_ledger_accounts_tenant_kind", "tenant", "kind", unique=True),
        Index("ux_ledger_accounts_system_kind", "system", "kind", unique=True),
    )

    id: int = Field(sa_column=Column(_BigKey, primary_key=True, autoincrement=False))
    kind: int = Field(sa_column=Column(SmallInteger, nullable=False))
    tenant: str | None = Field(default=None, max_length=63)
    system: int | None = Field(default=None, sa_column=Column(SmallInteger, nullable=True))
    flags: int = Field(sa_column=Column(Integer, nullable=False))
    timestamp_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    debits_pending: int = Field(sa_column=Column(BigInteger, nullable=False))
    debits_posted: int = Field(sa_column=Column(BigInteger, nullable=False))
    credits_pending: int = Field(sa_column=Column(BigInteger, nullable=False))
    credits_posted: int = Field(sa_column=Column(BigInteger, nullable=False))


class TransferRow(SQLModel, table=True):
    __tablename__ = "ledger_transfers"
    __table_args__ = (
        Index("ix_ledger_transfers_debit", "debit_account_id", "timestamp_ns"),
        Index("ix_ledger_transfers_credit", "credit_account_id", "timestamp_ns"),
        Index("ix_ledger_transfers_timestamp", "timestamp_ns", unique=True),
        Index("ix_ledger_transfers_pending_id", "pending_id"),
    )

    # 16 big-endian bytes of the 128-bit id.
    id: bytes = Field(sa_column=Column(LargeBinary(16), primary_key=True))
    debit_account_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    credit_account_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    pending_id: bytes | None = Field(default=None, sa_column=Column(LargeBinary(16)))
    user_data: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32)))
    kind: int = Field(sa_column=Column(SmallInteger, nullable=False))
    code: int = Field(sa_column=Column(SmallInteger, nullable=False))
    flags: int = Field(sa_column=Column(SmallInteger, nullable=False))
    timeout_seconds: int = Field(sa_column=Column(BigInteger, nullable=False))
    timestamp_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    # orbitq.ledger.model.Result; OK rows moved balances, others are recorded failures.
    result: int = Field(sa_column=Column(SmallInteger, nullable=False))
    # For post/void: the pending amount the resolution released from the pending balances.
    released: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Position of this transfer's entry in the signed log.
    entry_index: int | None = Field(default=None, sa_column=Column(BigInteger))


class PendingRow(SQLModel, table=True):
    """Status of each pending transfer: derived from the transfers, kept for O(1) resolution."""

    __tablename__ = "ledger_pending"
    __table_args__ = (Index("ix_ledger_pending_open", "status", "expires_ns"),)

    id: bytes = Field(sa_column=Column(LargeBinary(16), primary_key=True))
    status: int = Field(sa_column=Column(SmallInteger, nullable=False))
    # 0 = never expires.
    expires_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class EntryRow(SQLModel, table=True):
    __tablename__ = "ledger_entries"

    index: int = Field(sa_column=Column("idx", _BigKey, primary_key=True, autoincrement=False))
    # The leaf: the exact bytes of a serialized orbitq.v1.LedgerEntry.
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Hashes of the perfect Merkle subtrees that end at this leaf, level 0 (the leaf hash) first.
    hashes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class EvidenceRow(SQLModel, table=True):
    """E5: one row per evidence entry of the log (a node key or a receipt), to find it by
    digest, by node or by request without scanning the log. Derived from the entries; the
    audit checks it against them (V18)."""

    __tablename__ = "ledger_evidence"
    __table_args__ = (
        Index("ix_ledger_evidence_digest", "digest"),
        Index("ix_ledger_evidence_node", "node", "kind", "entry_index"),
        Index("ix_ledger_evidence_request", "request_id"),
    )

    # Position of the entry in the signed log. (Not the digest: a node may enroll a key again
    # after another one, and that is a new entry with the same digest.)
    entry_index: int = Field(sa_column=Column(_BigKey, primary_key=True, autoincrement=False))
    # SHA-256 of the receipt envelope, or of the NodeKeyEnrolled message (E5).
    digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    # orbitq.ledger.entries.EvidenceKind: 1 node key, 2 receipt.
    kind: int = Field(sa_column=Column(SmallInteger, nullable=False))
    node: str = Field(sa_column=Column(String(64), nullable=False))
    # For receipts: the request (32 hex digits); NULL for node keys.
    request_id: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "ledger_checkpoints"

    size: int = Field(sa_column=Column(_BigKey, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    # When it was signed; the note's chain line (L19) says the same under the signature.
    timestamp_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class HeadRow(SQLModel, table=True):
    """One row: the log's size, its newest entry's timestamp, the next account id, and the
    count and body hash of the stored checkpoints' newest (L19). Every append locks it first,
    which serialises writers across broker replicas on PostgreSQL (entries stay gapless). Every
    column is derived from the log and its checkpoints, and the audit checks it (V20)."""

    __tablename__ = "ledger_head"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_timestamp_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    next_account_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    # L19: how many checkpoints the log stored, and SHA-256 of the newest one's body (None:
    # none yet): the next checkpoint's chain link, and what shows the newest was deleted.
    checkpoints: int = Field(sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    checkpoint_hash: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary(32), nullable=True)
    )
