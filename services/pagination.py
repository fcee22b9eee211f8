"""Page sizes and page tokens for every List RPC (Google AIP-158 style).

Owns: the default and maximum page size (a size above the maximum is coerced to it, as AIP-158
says), and opaque page tokens that carry a position and the filter they were made for, so a
token cannot be replayed against a different query. A token is client input: what it decodes
to is checked against the shape its List method makes (`INT`, `TEXT`, or a tuple of them) and
the databases' ranges (64-bit integers; text without NUL or lone surrogates), so a forged or
damaged token is INVALID_ARGUMENT, never a query the database refuses.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from orbitq.services.boundary.ranges import INT64_MAX
from orbitq.services.errors import InvalidArgumentError

PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
PAGE_TOKEN_CHARS_MAX = 512
INT64_MIN = -(2**63)

# The shapes of a position: a whole number, a text, or a tuple of them (a JSON list).
INT: type = int
TEXT: type = str
Shape = type | tuple[type, ...]

_MALFORMED = "malformed page_token: pass back next_page_token as given"


def page_size(requested: int) -> int:
    if requested <= 0:
        return PAGE_SIZE_DEFAULT
    return min(requested, PAGE_SIZE_MAX)


def _fingerprint(query: Any) -> str:
    text = json.dumps(query, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_token(position: Any, query: Any) -> str:
    payload = json.dumps({"p": position, "q": _fingerprint(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str, query: Any, shape: Shape | None = None) -> Any:
    """The position in `token` (of `shape` when given, as a list for a tuple shape), or None
    for an empty token. Raises InvalidArgumentError."""
    if not token:
        return None
    if len(token) > PAGE_TOKEN_CHARS_MAX:
        raise InvalidArgumentError("page_token is too long: pass back next_page_token as given")
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position, fingerprint = payload["p"], payload["q"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgumentError(_MALFORMED) from None
    if fingerprint != _fingerprint(query):
        raise InvalidArgumentError("page_token belongs to a different query: keep the filters")
    if not _fits(position, shape):
        raise InvalidArgumentError(_MALFORMED)
    return position


def _fits(position: Any, shape: Shape | None) -> bool:
    if isinstance(shape, tuple):
        return (
            isinstance(position, list)
            and len(position) == len(shape)
            and all(_fits(item, kind) for item, kind in zip(position, shape, strict=True))
        )
    if shape is None:  # any position encode_token makes: a leaf, or a flat list of leaves
        items = position if isinstance(position, list) else [position]
        return all(_leaf(item) for item in items)
    return type(position) is shape and _leaf(position)


def _leaf(value: Any) -> bool:
    if type(value) is int:  # not bool, not float
        return INT64_MIN <= value <= INT64_MAX
    if type(value) is str:
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")  # lone surrogates (JSON "\ud800") do not encode
        except UnicodeEncodeError:
            return False
        return True
    return False
