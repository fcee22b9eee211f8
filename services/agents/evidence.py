"""The node agents' evidence in the signed log: a node's key, appended at enrollment.

Owns: `append_node_key` — a NodeKeyEnrolled entry (orbitq.ledger's evidence item) appended
once per (node, key, rate, runtime): a retry returns the entry already there.

Does not own: the entry's encoding or the evidence table (orbitq.ledger.store), receipts
(requests.reservations appends each with the transfers that settle against it).
"""

from __future__ import annotations

from orbitq.ledger.entries import NodeKeyEvidence
from orbitq.ledger.store.work import EvidenceRecorded, RecordEvidence
from orbitq.ledger.store.writer import GroupCommitWriter


def append_node_key(
    writer: GroupCommitWriter, node: str, public_key: bytes, fuel_per_core_second: int, runtime: str
) -> int:
    """Append (once) the NodeKeyEnrolled entry of this key; its index in the log."""
    evidence = NodeKeyEvidence(
        node=node,
        public_key=public_key,
        fuel_per_core_second=fuel_per_core_second,
        runtime=runtime,
    )
    (recorded,) = writer.apply(RecordEvidence(evidence))
    assert isinstance(recorded, EvidenceRecorded)
    return recorded.entry_index
