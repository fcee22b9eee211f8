"""Request ids: one per RPC, taken from the caller's `x-request-id` metadata when it is a sane
token (so a client's id follows its call into the broker's logs), else made here.

Owns: the context variable the JSON log formatter reads. Does not own: setting it for a call
(the interceptor in interceptor.py).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from contextvars import ContextVar

REQUEST_ID_METADATA = "x-request-id"
REQUEST_ID_CHARS_MAX = 64
_SANE = re.compile(rf"[A-Za-z0-9._:-]{{1,{REQUEST_ID_CHARS_MAX}}}")

current_request_id: ContextVar[str | None] = ContextVar("orbitq_request_id", default=None)


def new_request_id() -> str:
    return secrets.token_hex(8)


def request_id_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The caller's id when it gave a sane one (anything else is replaced, never echoed)."""
    for key, value in metadata or ():
        if key == REQUEST_ID_METADATA and isinstance(value, str) and _SANE.fullmatch(value):
            return value
    return new_request_id()
