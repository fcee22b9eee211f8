"""orbitq.ledger: the rules of the quota ledger and of its signed log.

Owns: accounts and transfers (the TigerBeetle-style state machine), the RFC 6962 Merkle log,
C2SP signed checkpoints, proofs and their verification. Everything importable from here is pure
(no database, no network) so that clients can verify a broker without pulling in the server;
the one package doing I/O, `orbitq.ledger.store`, must be imported explicitly.

Does not own: who may call what (orbitq.services), transport (gRPC), or the clock.

The log's modules, each citing the numbered rules of docs/ledger-format.md (L1..L18):

- `errors`: the exception tree under `LedgerIntegrityError`;
- `merkle`: leaf and node hashing, the appending `Frontier`, roots and proofs built from stored
  perfect-subtree hashes in O(log n) reads, and proof verification (RFC 9162 §2.1);
- `note`: C2SP signed notes with Ed25519 keys (verifier and signer key strings);
- `checkpoint`: C2SP tlog-checkpoints, signed and verified against a pinned key.

Imported explicitly because they decode entries with the generated protobuf classes:
`entries` (the leaf encoding) and `audit` (the offline audit of a whole stored ledger, rules
V1..V20, which raises the `...IntegrityError`s exported here).

The agent formats (docs/agent-format.md), imported explicitly too, pure and free of protobuf
(cbor2 and cryptography only), so node agents and tenants' verifiers need nothing else:
`cose` (COSE_Sign1 envelopes with Ed25519, deterministic CBOR), `tickets` (the broker's signed
order to run a request on a node, checked onboard), `receipts` (a node's signed usage receipt
and the charge it backs).

`gc_pause`, imported explicitly too: pausing the cyclic garbage collector over a block that
builds many acyclic objects (the store's group commit, the contact search's result).

Verification functions return the verified value (or None) and raise a `LedgerIntegrityError`
subclass on any failure; none returns a bool to forget to check.
"""

from __future__ import annotations

from orbitq.ledger.checkpoint import (
    Checkpoint,
    format_checkpoint_body,
    parse_checkpoint_body,
    sign_checkpoint,
    verify_checkpoint,
)
from orbitq.ledger.errors import (
    AccountIntegrityError,
    BalanceMismatchError,
    CheckpointFormatError,
    CheckpointIntegrityError,
    ConsistencyProofError,
    EntryIntegrityError,
    HashSizeError,
    HeadIntegrityError,
    InclusionProofError,
    InvariantViolationError,
    KeyFormatError,
    LedgerIntegrityError,
    NoteFormatError,
    NoteSignatureError,
    OriginMismatchError,
    UnknownKeyError,
)
from orbitq.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    TREE_SIZE_MAX,
    Frontier,
    SubtreeReader,
    consistency_proof,
    consistency_proof_nodes,
    frontier_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    leaf_hash,
    node_hash,
    root_from_subtrees,
    root_nodes,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from orbitq.ledger.note import (
    NOTE_BYTES_MAX,
    NOTE_SIGNATURES_MAX,
    NoteSignature,
    OpenedNote,
    SignedNote,
    Signer,
    Verifier,
    key_id,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NOTE_BYTES_MAX",
    "NOTE_SIGNATURES_MAX",
    "TREE_SIZE_MAX",
    "AccountIntegrityError",
    "BalanceMismatchError",
    "Checkpoint",
    "CheckpointFormatError",
    "CheckpointIntegrityError",
    "ConsistencyProofError",
    "EntryIntegrityError",
    "Frontier",
    "HashSizeError",
    "HeadIntegrityError",
    "InclusionProofError",
    "InvariantViolationError",
    "KeyFormatError",
    "LedgerIntegrityError",
    "NoteFormatError",
    "NoteSignature",
    "NoteSignatureError",
    "OpenedNote",
    "OriginMismatchError",
    "SignedNote",
    "Signer",
    "SubtreeReader",
    "UnknownKeyError",
    "Verifier",
    "consistency_proof",
    "consistency_proof_nodes",
    "format_checkpoint_body",
    "frontier_nodes",
    "inclusion_proof",
    "inclusion_proof_nodes",
    "key_id",
    "leaf_hash",
    "node_hash",
    "open_note",
    "parse_checkpoint_body",
    "parse_note",
    "parse_signer_key",
    "parse_verifier_key",
    "root_from_subtrees",
    "root_nodes",
    "root_of",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
