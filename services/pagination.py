"""Page sizes and page tokens for every List RPC (Google AIP-158 style).

Owns: the default and maximum page size (a size above the maximum is coerced to it, as AIP-158
says), and opaque page tokens that carry a position and the filter they were made for, so a
token cannot be replayed against a different query.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from orbitq.services.errors import InvalidArgumentError

PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1000
PAGE_TOKEN_CHARS_MAX = 512


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


def decode_token(token: str, query: Any) -> Any:
    """The position in `token`, or None for an empty token. Raises InvalidArgumentError."""
    if not token:
        return None
    if len(token) > PAGE_TOKEN_CHARS_MAX:
        raise InvalidArgumentError("page_token is too long: pass back next_page_token as given")
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position, fingerprint = payload["p"], payload["q"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgumentError(
            "malformed page_token: pass back next_page_token as given"
        ) from None
    if fingerprint != _fingerprint(query):
        raise InvalidArgumentError("page_token belongs to a different query: keep the filters")
    return position
