"""128-bit ids as clients write them: 32 hex digits, a UUID, an int, or 16 bytes.

Owns: parsing and formatting ids (transfer ids, idempotency ids) and making new random ones.
"""

from __future__ import annotations

import re
import secrets
import uuid

from orbitq.ledger.model import ID_MAX

_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")

IdLike = int | str | bytes | uuid.UUID


def new_id() -> int:
    """A random 128-bit id (never the reserved 0 or 2^128-1)."""
    while True:
        value = secrets.randbits(128)
        if 0 < value < ID_MAX:
            return value


def parse_id(value: IdLike) -> int:
    """An id from 32 hex digits, a UUID (any standard spelling), an int or 16 bytes."""
    if isinstance(value, uuid.UUID):
        result = value.int
    elif isinstance(value, bytes):
        if len(value) != 16:
            raise ValueError(f"an id is 16 bytes, got {len(value)}")
        result = int.from_bytes(value, "big")
    elif isinstance(value, int):
        result = value
    else:
        text = value.strip()
        if _HEX32.match(text):
            result = int(text, 16)
        else:
            try:
                result = uuid.UUID(text).int
            except ValueError:
                raise ValueError(f"id {text[:80]!r} is neither 32 hex digits nor a UUID") from None
    if not 0 < result < ID_MAX:
        raise ValueError("an id must be between 1 and 2^128-2 (0 and 2^128-1 are reserved)")
    return result


def id_bytes(value: IdLike) -> bytes:
    return parse_id(value).to_bytes(16, "big")


def format_id(value: int | bytes) -> str:
    if isinstance(value, bytes):
        return value.hex()
    return f"{value:032x}"
