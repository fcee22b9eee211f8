"""Strict base64 for the log's text formats.

Owns: decoding the standard, padded base64 alphabet (RFC 4648 §4) and accepting only the
canonical encoding of the decoded bytes (L16), so one value has exactly one spelling in a
checkpoint, a signature line or a key string. Encoding is `base64.b64encode`, canonical already.

Does not own: which error a caller raises; `decode` raises ValueError and the caller translates
it into the error of its format.
"""

from __future__ import annotations

import base64

__all__ = ["decode", "encode"]


def encode(raw: bytes) -> str:
    """Standard padded base64 of `raw` (always canonical)."""
    return base64.b64encode(raw).decode("ascii")


def decode(text: str) -> bytes:
    """L16: the bytes of canonical standard base64 `text`; ValueError for anything else.

    Rejects characters outside the alphabet (whitespace included), missing or extra padding,
    and non-zero unused bits in the last character (another spelling of the same bytes).
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as error:  # binascii.Error, and non-ASCII text
        raise ValueError(f"not standard base64: {error}") from None
    if encode(raw) != text:
        raise ValueError("not the canonical base64 spelling of its bytes")
    return raw
