"""C2SP tlog-checkpoints: the signed tree heads of the log (c2sp.org/tlog-checkpoint).

Owns: the checkpoint body `<origin>\\n<size>\\n<base64 root>\\n` plus optional extension lines,
written and parsed strictly (L10); signing a checkpoint as a signed note; and verifying one
against a pinned key, including orbitq's rule that the origin is the signing key's name (L15).

Does not own: the note format and signature rules (orbitq.ledger.note), whether two
checkpoints are consistent (orbitq.ledger.merkle.verify_consistency), or which checkpoint a
client trusted last (the SDK keeps it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from orbitq.ledger import _b64
from orbitq.ledger.errors import CheckpointFormatError, HashSizeError, OriginMismatchError
from orbitq.ledger.merkle import HASH_SIZE, TREE_SIZE_MAX
from orbitq.ledger.note import Signer, Verifier, open_note, parse_verifier_key, sign_note

__all__ = [
    "Checkpoint",
    "format_checkpoint_body",
    "parse_checkpoint_body",
    "sign_checkpoint",
    "verify_checkpoint",
]

_SIZE = re.compile("0|[1-9][0-9]{0,19}")  # L10: ASCII decimal, no leading zeros, <= 20 digits
_CONTROL = re.compile("[\x00-\x1f]")  # inside a line: no newline, no other control character


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log `origin` had `size` leaves with root `root_hash` (L10)."""

    origin: str
    """The log's identity; in orbitq, also the name of the key that signs it (L15)."""
    size: int
    """Number of leaves, 0..2^64-1."""
    root_hash: bytes
    """The 32-byte RFC 6962 root of the first `size` leaves."""
    extensions: tuple[str, ...]
    """Extension lines after the root, opaque and non-empty; orbitq writes one, the chain line
    (L19, orbitq.ledger.checkpoint_chain)."""
    note: str
    """The whole signed note this checkpoint was verified from; "" when only parsed."""


def format_checkpoint_body(
    origin: str, size: int, root_hash: bytes, extensions: Sequence[str] = ()
) -> str:
    """L10: the note text of a checkpoint. Refuses anything `parse_checkpoint_body` would refuse
    (CheckpointFormatError, HashSizeError), and origins that are not valid key names (L15)."""
    if not origin or any(char.isspace() for char in origin) or "+" in origin:
        raise CheckpointFormatError(
            f"origin {origin!r} must be non-empty, without spaces or '+': it is also the key name"
        )
    if not 0 <= size <= TREE_SIZE_MAX:
        raise CheckpointFormatError(f"tree size {size} is outside 0..2^64-1 (L7)")
    if len(root_hash) != HASH_SIZE:
        raise HashSizeError(f"root hash has {len(root_hash)} bytes, not {HASH_SIZE}")
    for line in (origin, *extensions):
        if not line or _CONTROL.search(line):
            raise CheckpointFormatError(
                f"checkpoint line {line!r} must be non-empty, without control characters"
            )
    body = "".join(f"{line}\n" for line in (origin, str(size), _b64.encode(root_hash), *extensions))
    parsed = parse_checkpoint_body(body)  # what we write, we can read back
    assert (parsed.origin, parsed.size, parsed.root_hash) == (origin, size, root_hash)
    assert parsed.extensions == tuple(extensions)
    return body


def parse_checkpoint_body(body: str) -> Checkpoint:
    """L10: parse a checkpoint's note text strictly; CheckpointFormatError if malformed.

    Returns a Checkpoint with `note` "": nothing was verified. Use `verify_checkpoint` for any
    checkpoint you are going to trust.
    """
    if not body.endswith("\n"):
        raise CheckpointFormatError("checkpoint body must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointFormatError(
            f"checkpoint body has {len(lines)} lines; it needs origin, tree size and root hash"
        )
    for number, line in enumerate(lines, 1):
        if not line:
            raise CheckpointFormatError(f"checkpoint line {number} is empty")
        if _CONTROL.search(line):
            raise CheckpointFormatError(f"checkpoint line {number} contains a control character")
    origin, size_text, root_text, *extensions = lines
    if not _SIZE.fullmatch(size_text) or int(size_text) > TREE_SIZE_MAX:
        raise CheckpointFormatError(
            f"tree size {size_text!r} is not a decimal number without leading zeros in 0..2^64-1"
        )
    try:
        root_hash = _b64.decode(root_text)
    except ValueError as error:
        raise CheckpointFormatError(f"root hash line {root_text!r} is {error}") from None
    if len(root_hash) != HASH_SIZE:
        raise CheckpointFormatError(
            f"root hash has {len(root_hash)} bytes; a SHA-256 root has {HASH_SIZE}"
        )
    return Checkpoint(origin, int(size_text), root_hash, tuple(extensions), "")


def sign_checkpoint(
    origin: str,
    size: int,
    root_hash: bytes,
    signer: Signer,
    *,
    extensions: Sequence[str] = (),
) -> str:
    """L10, L12: the full signed note of the checkpoint (origin, size, root_hash).

    orbitq signs with a key named like the origin (L15), otherwise `verify_checkpoint` will
    refuse the result; this function does not insist, so that foreign vectors can be reproduced.
    """
    return sign_note(format_checkpoint_body(origin, size, root_hash, extensions), [signer])


def verify_checkpoint(note_text: str | bytes, vkey: str | Verifier) -> Checkpoint:
    """L15: the checkpoint in `note_text`, signed by the key `vkey`, with origin == key name.

    Raises KeyFormatError (bad vkey), NoteFormatError, NoteSignatureError, UnknownKeyError (no
    signature by that key), CheckpointFormatError, or OriginMismatchError.
    """
    verifier = parse_verifier_key(vkey) if isinstance(vkey, str) else vkey
    opened = open_note(note_text, [verifier])  # L14: signature first, text after
    checkpoint = parse_checkpoint_body(opened.text)
    if checkpoint.origin != verifier.name:
        raise OriginMismatchError(
            f"checkpoint origin {checkpoint.origin!r} is not the name of its key "
            f"{verifier.name!r}: this is another log's checkpoint, or the key is not this log's"
        )
    note = note_text if isinstance(note_text, str) else note_text.decode("utf-8")
    return replace(checkpoint, note=note)
