"""Content addresses as the API writes them: "sha256:<64 lower-case hex digits>".

Owns: parsing a digest a client sent (INVALID_ARGUMENT naming the field), formatting one, and
the SHA-256 of bytes in both forms. Stored digests are the 64 hex digits alone.
"""

from __future__ import annotations

import hashlib
import re

from orbitq.services.errors import InvalidArgumentError

PREFIX = "sha256:"
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


def parse(text: str, field: str = "digest") -> str:
    """The 64 hex digits of "sha256:<hex>", or InvalidArgumentError naming `field`."""
    match = _DIGEST.match(text)
    if match is None:
        raise InvalidArgumentError(
            f"{field} {text[:80]!r} is not a content address: expected sha256:<64 hex digits>"
        )
    return match.group(1)


def is_digest(text: str) -> bool:
    return _DIGEST.match(text) is not None


def of_hex(digest_hex: str) -> str:
    return PREFIX + digest_hex


def hex_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
