"""The checkpoint chain: each stored checkpoint commits, under its signature, to its place in the
sequence of the log's stored checkpoints, its time, and the checkpoint before it (L19).

Owns: the `orbitq-chain` extension line of a checkpoint body — `orbitq-chain <seq>
<timestamp_ns> <previous>` — writing it and parsing it strictly, and the hash one checkpoint
keeps of the one before it (SHA-256 of its body: the signed text, not the signature lines, so a
witness's cosignature added later changes nothing).

Why: a checkpoint is evidence only while it is stored. Without the chain, deleting the newest or
a middle stored checkpoint, or changing the time it was signed, leaves every remaining
checkpoint valid; with it, the next checkpoint names the missing one (its sequence number and
hash no longer follow), and the head row names the newest (orbitq.ledger.audit, V19, V20).

Does not own: the checkpoint body syntax (orbitq.ledger.checkpoint), storing or signing
(orbitq.ledger.store.log), or checking a stored sequence (orbitq.ledger.audit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from hashlib import sha256

from orbitq.ledger import _b64
from orbitq.ledger.checkpoint import Checkpoint, format_checkpoint_body
from orbitq.ledger.errors import CheckpointFormatError
from orbitq.ledger.merkle import HASH_SIZE

__all__ = ["CHAIN_TAG", "ChainLink", "body_hash", "chain_line", "chain_link_of"]

CHAIN_TAG = "orbitq-chain"
# Sequence numbers and timestamps are canonical decimals of at most 19 digits (< 2^63).
_DECIMAL = re.compile("0|[1-9][0-9]{0,18}")
_FIRST = "-"  # the first stored checkpoint has no predecessor
_INT63_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ChainLink:
    """What a checkpoint says about its place among the log's stored checkpoints (L19)."""

    seq: int
    """1 for the first checkpoint the log stored, then 2, 3, ... without gaps."""
    timestamp_ns: int
    """When the broker signed it (ns since the Unix epoch); its stored row says the same."""
    previous: bytes | None
    """`body_hash` of the stored checkpoint before it; None only for seq 1."""


def body_hash(checkpoint: Checkpoint) -> bytes:
    """SHA-256 of the checkpoint's body (the signed text, L10): what the next link names."""
    body = format_checkpoint_body(
        checkpoint.origin, checkpoint.size, checkpoint.root_hash, checkpoint.extensions
    )
    return sha256(body.encode("utf-8")).digest()


def chain_line(link: ChainLink) -> str:
    """L19: the extension line of `link`; ValueError if it breaks the rule."""
    if not 1 <= link.seq <= _INT63_MAX or not 0 <= link.timestamp_ns <= _INT63_MAX:
        raise ValueError(f"chain link {link} is outside 1..2^63-1 / 0..2^63-1")
    if (link.previous is None) != (link.seq == 1):
        raise ValueError("the first checkpoint (seq 1), and only it, has no previous one")
    if link.previous is not None and len(link.previous) != HASH_SIZE:
        raise ValueError(f"previous hash has {len(link.previous)} bytes, not {HASH_SIZE}")
    previous = _FIRST if link.previous is None else _b64.encode(link.previous)
    return f"{CHAIN_TAG} {link.seq} {link.timestamp_ns} {previous}"


def chain_link_of(checkpoint: Checkpoint) -> ChainLink | None:
    """L19: the chain link of a checkpoint, None if it has no chain line (a checkpoint signed
    before the chain existed); CheckpointFormatError if a chain line is malformed or repeated."""
    lines = [line for line in checkpoint.extensions if line.split(" ", 1)[0] == CHAIN_TAG]
    if not lines:
        return None
    if len(lines) > 1:
        raise CheckpointFormatError(f"the checkpoint has {len(lines)} {CHAIN_TAG} lines, not one")
    parts = lines[0].split(" ")
    if (
        len(parts) != 4
        or not _DECIMAL.fullmatch(parts[1])
        or not _DECIMAL.fullmatch(parts[2])
        or int(parts[1]) == 0
    ):
        raise CheckpointFormatError(
            f"chain line {lines[0]!r} is not '{CHAIN_TAG} <seq ≥ 1> <timestamp_ns> <previous>'"
        )
    seq, timestamp_ns = int(parts[1]), int(parts[2])
    previous: bytes | None = None
    if parts[3] != _FIRST:
        try:
            previous = _b64.decode(parts[3])
        except ValueError as error:
            raise CheckpointFormatError(f"chain line's previous hash is {error}") from None
        if len(previous) != HASH_SIZE:
            raise CheckpointFormatError(
                f"chain line's previous hash has {len(previous)} bytes, not {HASH_SIZE}"
            )
    if (previous is None) != (seq == 1):
        raise CheckpointFormatError(
            f"chain line {lines[0]!r}: the first checkpoint (seq 1), and only it, names no "
            "previous one"
        )
    if seq > _INT63_MAX or timestamp_ns > _INT63_MAX:
        raise CheckpointFormatError(f"chain line {lines[0]!r} has a number above 2^63-1")
    return ChainLink(seq, timestamp_ns, previous)
