"""Evidence in the stored log: node keys and usage receipts, found by digest, node or request.

Owns: the queries of the `ledger_evidence` table (E5 of docs/ledger-format.md) — the lookups
the write path runs to append a piece of evidence at most once (`existing_index`), the rows it
writes (`evidence_row`), and the reads the broker's services run (`EvidenceReads`): evidence by
digest, the node key in force for a node (its latest NodeKeyEnrolled entry, or the latest
before a given entry), and the receipt recorded for a request. Reads return the evidence
decoded from the stored entry bytes, never from the row alone.

Does not own: appending entries (orbitq.ledger.store.write), what evidence is
(orbitq.ledger.entries), or checking it (orbitq.ledger.audit, V15-V18).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from orbitq.ledger.entries import Evidence, EvidenceKind, ReceiptEvidence, decode_entry
from orbitq.ledger.store.dialect import Dialect

EVIDENCE_COLUMNS = "entry_index, digest, kind, node, request_id"


@dataclass(frozen=True, slots=True)
class StoredEvidence:
    """Evidence as the log holds it: its entry's position and timestamp, and its digest."""

    entry_index: int
    timestamp_ns: int
    digest: bytes
    evidence: Evidence


def evidence_row(entry_index: int, evidence: Evidence) -> tuple[Any, ...]:
    """The `ledger_evidence` row of an evidence entry (in EVIDENCE_COLUMNS order)."""
    return (
        entry_index,
        evidence.digest(),
        int(evidence.kind),
        evidence.node,
        evidence.request_id,
    )


def existing_index(cursor: Any, dialect: Dialect, evidence: Evidence, digest: bytes) -> int | None:
    """E5: the entry that already records `evidence`, if a retry must return it: a receipt
    with this digest anywhere in the log, or this node key as the node's latest one."""
    if isinstance(evidence, ReceiptEvidence):
        cursor.execute(
            dialect.sql(
                "SELECT entry_index FROM ledger_evidence WHERE digest = ? AND kind = ?"
                " ORDER BY entry_index LIMIT 1"
            ),
            (digest, int(EvidenceKind.RECEIPT)),
        )
        row = cursor.fetchone()
        return int(row[0]) if row is not None else None
    latest = _latest_node_key(cursor, dialect, evidence.node, None)
    if latest is not None and bytes(latest[1]) == digest:
        return int(latest[0])
    return None


def _latest_node_key(
    cursor: Any, dialect: Dialect, node: str, before: int | None
) -> tuple[Any, ...] | None:
    """(entry_index, digest) of the node's latest key entry (before entry `before`)."""
    bound = " AND entry_index < ?" if before is not None else ""
    cursor.execute(
        dialect.sql(
            "SELECT entry_index, digest FROM ledger_evidence WHERE node = ? AND kind = ?"
            f"{bound} ORDER BY entry_index DESC LIMIT 1"
        ),
        (node, int(EvidenceKind.NODE_KEY), *((before,) if before is not None else ())),
    )
    row: tuple[Any, ...] | None = cursor.fetchone()
    return row


class EvidenceReads:
    """Read-only queries of the evidence entries, over one engine; any thread may call them."""

    def __init__(self, engine: sa.Engine, dialect: Dialect) -> None:
        self._engine = engine
        self._dialect = dialect

    def evidence(self, digest: bytes) -> StoredEvidence | None:
        """The evidence with this digest (the latest entry, if a node enrolled a key again)."""
        return self._one(
            "SELECT entry_index FROM ledger_evidence WHERE digest = ?"
            " ORDER BY entry_index DESC LIMIT 1",
            (digest,),
        )

    def node_key(self, node: str, *, before: int | None = None) -> StoredEvidence | None:
        """The node's key in force: its latest NodeKeyEnrolled entry, or the latest before
        entry `before` (the key a receipt recorded at `before` must verify under, V16)."""
        with self._engine.connect() as conn:
            row = _latest_node_key(conn.connection.cursor(), self._dialect, node, before)
        return self._at(int(row[0])) if row is not None else None

    def receipt_of(self, request_id: str) -> StoredEvidence | None:
        """The receipt recorded for a request (the first, if there were several)."""
        return self._one(
            "SELECT entry_index FROM ledger_evidence WHERE request_id = ? AND kind = ?"
            " ORDER BY entry_index LIMIT 1",
            (request_id, int(EvidenceKind.RECEIPT)),
        )

    def _one(self, sql: str, params: tuple[Any, ...]) -> StoredEvidence | None:
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(self._dialect.sql(sql), params)
            row = cursor.fetchone()
        return self._at(int(row[0])) if row is not None else None

    def _at(self, entry_index: int) -> StoredEvidence:
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(
                self._dialect.sql("SELECT data FROM ledger_entries WHERE idx = ?"), (entry_index,)
            )
            row = cursor.fetchone()
        if row is None:
            raise LookupError(f"evidence row {entry_index} has no log entry")
        decoded = decode_entry(bytes(row[0]))
        if decoded.evidence is None:
            raise LookupError(f"log entry {entry_index} records no evidence")
        evidence = decoded.evidence
        return StoredEvidence(entry_index, decoded.timestamp_ns, evidence.digest(), evidence)
