"""CWT claim sets (RFC 8392) as tickets and receipts use them: strict decoding, typed values.

Owns: reading a payload as a claim set strictly (`read`: a definite-length map with integer
keys in deterministic order, no duplicate key, each value checked, and the bytes exactly the
deterministic encoding: rules S7-S11 of docs/agent-format.md), the checks of one claim value
(`uint`, `text`, `fixed_bytes`, `request_id`) that the ticket and receipt dataclasses run on
construction, and `ClaimError`, which names the field. Once its values are checked, the
decoded claim set is encoded again and the bytes compared (S9): that catches every
non-deterministic form at once (non-shortest heads, indefinite lengths, tags, bytes after the
map), so this module does not look for each.

Private to orbitq.ledger: orbitq.ledger.tickets and orbitq.ledger.receipts use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

import cbor2

from orbitq.ledger.cose import MALFORMED, EnvelopeError, dumps

UINT_MAX: Final = 2**63 - 1
"""S10: integer claims are 0..2^63 - 1, so they fit a signed 64-bit column on both databases."""
HASH_BYTES: Final = 32
REQUEST_ID_BYTES: Final = 16
_REQUEST_ID = re.compile("[0-9a-f]{32}")
# C0 controls and DEL (S10); a character class, not a per-character Python loop.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
T = TypeVar("T")


class ClaimError(ValueError):
    """A claim value breaks its rule; `field` names it (the dataclass field)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


def int_key_order(key: int) -> tuple[int, int]:
    """The bytewise order of the encodings of integer keys (RFC 8949 §4.2.1), without
    encoding them: unsigned ones (major type 0) ascending, then negative ones (major type 1)
    by descending value."""
    return (0, key) if key >= 0 else (1, -1 - key)


def layouts(known: Mapping[int, str], optional: Sequence[int]) -> frozenset[tuple[int, ...]]:
    """Every key sequence a claim set of `known` keys may have, given which are optional."""
    found = {tuple(known)}
    for key in optional:
        found |= {tuple(k for k in keys if k != key) for keys in found}
    return frozenset(found)


def decode_claim_map(
    payload: bytes, known: Mapping[int, str], valid: frozenset[tuple[int, ...]]
) -> Mapping[int, object]:
    """S7-S8: the claim map of `payload`; its keys are one of the `valid` sequences of `known`
    keys (so none is repeated, unknown, or out of deterministic order). Raises
    EnvelopeError(malformed) naming the first problem."""
    count = _map_count(payload)
    try:
        claims = cbor2.loads(payload)
    except Exception as error:  # signed, but by a key that may be compromised: hostile bytes
        raise EnvelopeError(MALFORMED, f"the claim set is not CBOR: {error}") from None
    if not isinstance(claims, Mapping):
        raise EnvelopeError(MALFORMED, "the claim set is not a CBOR map (S7)")
    if len(claims) == count and tuple(claims) in valid:
        return claims
    _diagnose_keys(claims, count, known)
    required = frozenset.intersection(*(frozenset(keys) for keys in valid))
    missing = [name for key, name in known.items() if key in required and key not in claims]
    raise EnvelopeError(MALFORMED, f"claims missing: {', '.join(missing)} (S7)")


def _diagnose_keys(claims: Mapping[object, object], count: int, known: Mapping[int, str]) -> None:
    if len(claims) != count:
        raise EnvelopeError(
            MALFORMED,
            f"the claim map holds {count} entries but {len(claims)} distinct keys: a claim key "
            "is repeated (S8)",
        )
    keys: list[int] = []
    for key in claims:
        if type(key) is not int:
            raise EnvelopeError(MALFORMED, f"claim key {key!r} is not an integer (S7)")
        if key not in known:
            raise EnvelopeError(MALFORMED, f"unknown claim {key} (S7)")
        keys.append(key)
    if keys != sorted(keys, key=int_key_order):
        raise EnvelopeError(
            MALFORMED, "the claim keys are not in deterministic order (RFC 8949 §4.2.1; S8)"
        )


def _map_count(payload: bytes) -> int:
    """The entry count a definite-length map head at the start of `payload` declares."""
    if not payload or payload[0] >> 5 != 5:
        raise EnvelopeError(MALFORMED, "the claim set is not a CBOR map (S7)")
    info = payload[0] & 0x1F
    if info < 24:
        return info
    if info in (24, 25) and len(payload) > info - 23:
        return int.from_bytes(payload[1 : 1 + (1 << (info - 24))], "big")
    raise EnvelopeError(MALFORMED, "the claim map's head is of indefinite or excessive length")


def read(
    payload: bytes,
    known: Mapping[int, str],
    valid: frozenset[tuple[int, ...]],
    build: Callable[[Mapping[int, object]], T],
) -> T:
    """S7-S11: the claim set of `payload` as the value `build` makes of its claims (checking
    each one: a ClaimError names the field); the claims, encoded again in their order (which
    `valid` fixed), must be exactly `payload` (S9). Raises EnvelopeError(malformed) naming the
    first problem."""
    claims = decode_claim_map(payload, known, valid)
    try:
        value = build(claims)
    except ClaimError as error:
        key = next((k for k, field in known.items() if field == error.field), None)
        where = f"claim {key} ({error.field})" if key is not None else error.field
        raise EnvelopeError(MALFORMED, f"{where} {error.problem}") from None
    # The decoded values were checked by `build`: re-encoding them is the encoding of the value.
    if dumps(claims) != payload:
        raise EnvelopeError(
            MALFORMED,
            "the claim set is not in deterministic CBOR (RFC 8949 §4.2.1; S9): a head is not "
            "in its shortest form, a length is indefinite, or bytes follow the map",
        )
    return value


# -- value checks ----------------------------------------------------------------------------------


def uints_valid(values: Sequence[object]) -> bool:
    """The fast check of many integer claims at once (S10); `uint` says which one fails."""
    # A loop, not all() over a generator: half the cost, on the path of every ticket opened.
    for value in values:  # noqa: SIM110
        if type(value) is not int or not 0 <= value <= UINT_MAX:
            return False
    return True


def text_valid(value: object, bytes_max: int) -> bool:
    """The fast check of a text claim: printable ASCII of 1..bytes_max characters; other
    text may still pass `text` (printable non-ASCII)."""
    return (
        type(value) is str
        and 0 < len(value) <= bytes_max
        and value.isascii()
        and value.isprintable()
    )


def uint(field: str, value: object, maximum: int = UINT_MAX) -> int:
    """S10: an integer 0..maximum (bools are not integers here)."""
    if type(value) is not int:
        raise ClaimError(field, f"must be an unsigned integer, not {_kind(value)}")
    if not 0 <= value <= maximum:
        raise ClaimError(field, f"must be 0..{maximum}, not {value}")
    return value


def text(field: str, value: object, bytes_max: int) -> str:
    """S10: non-empty text of at most `bytes_max` UTF-8 bytes, no control characters."""
    if type(value) is not str:
        raise ClaimError(field, f"must be text, not {_kind(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ClaimError(field, "must be valid Unicode (no lone surrogates)") from None
    if not 0 < size <= bytes_max:
        raise ClaimError(field, f"must be 1..{bytes_max} UTF-8 bytes, not {size}")
    if _CONTROL.search(value):
        raise ClaimError(field, "must not contain control characters")
    return value


def fixed_bytes(field: str, value: object, size: int) -> bytes:
    if type(value) is not bytes:
        raise ClaimError(field, f"must be a byte string, not {_kind(value)}")
    if len(value) != size:
        raise ClaimError(field, f"must be {size} bytes, not {len(value)}")
    return value


def optional_digest(field: str, value: object) -> bytes | None:
    return None if value is None else fixed_bytes(field, value, HASH_BYTES)


def request_id(field: str, value: object) -> str:
    """A request id: 32 lower-case hex digits (the 16-byte `cti` claim)."""
    if type(value) is not str or not _REQUEST_ID.fullmatch(value):
        raise ClaimError(field, "must be 32 lower-case hex digits")
    return value


def cti_to_request_id(field: str, value: object) -> str:
    """S11: the 16-byte `cti` claim as a request id."""
    return fixed_bytes(field, value, REQUEST_ID_BYTES).hex()


def _kind(value: object) -> str:
    if value is None:
        return "missing"
    return type(value).__name__
