"""The bytes of a TransferRecorded leaf, written directly in protobuf's wire format.

Owns: `transfer_recorded_bytes`, the append path's encoder of the commonest leaf (one call per
transfer a group commits). It writes exactly what protobuf's deterministic serialization of the
same `orbitq.v1.LedgerEntry` writes (docs/ledger-format.md L1): fields in field-number order,
proto3 zero scalars and empty bytes left out, the `flags` message always present, varints in
base-128 little-endian groups. For values its wire arithmetic does not cover (a field beyond
its proto type's range, an enum value that is not a one-byte varint) it returns None and the
caller uses protobuf itself, so such a transfer fails or encodes exactly as before.

Why not protobuf: setting a dozen fields on nested messages costs ~2.7 us per entry; joining
precomputed tags and cached varints costs about a third of that. tests/ledger/test_entries.py
pins these bytes to protobuf's for arbitrary transfers.

Does not own: any other leaf (orbitq.ledger.entries encodes those with protobuf), decoding, or
hashing.
"""

from __future__ import annotations

from orbitq.ledger.model import StoredTransfer

# Tags: (field number << 3) | wire type (0 varint, 2 length-delimited).
_ENTRY_INDEX = b"\x08"
_ENTRY_TIMESTAMP = b"\x10"
_ENTRY_TRANSFER_RECORDED = b"\x22"
_RECORDED_TRANSFER = b"\x0a"
_RECORDED_RESULT = b"\x10"
_TRANSFER_ID = b"\x0a\x10"  # always 16 bytes
_TRANSFER_DEBIT = b"\x10"
_TRANSFER_CREDIT = b"\x18"
_TRANSFER_AMOUNT = b"\x20"
_TRANSFER_PENDING_ID = b"\x2a\x10"
_TRANSFER_USER_DATA = b"\x32"
_TRANSFER_KIND = b"\x38"
_TRANSFER_CODE = b"\x40"
_TRANSFER_TIMEOUT = b"\x50"
_TRANSFER_TIMESTAMP = b"\x58"

# One-byte varints, and the first byte of a longer varint whose low seven bits are i.
_SMALL = tuple(bytes([value]) for value in range(0x80))
_CONTINUED = tuple(bytes([value | 0x80]) for value in range(0x80))


def _flags_field(flags: int) -> bytes:
    """Field 9, TransferFlags {linked = 1, pending = 2, post_pending = 3, void_pending = 4}:
    present even when empty, a true bool written as (tag, 1)."""
    body = b"".join(bytes([(bit + 1) << 3, 1]) for bit in range(4) if flags >> bit & 1)
    return b"\x4a" + bytes([len(body)]) + body


# Only the four known bits reach the wire (as protobuf's encoder of the same flags).
_FLAGS = tuple(_flags_field(flags) for flags in range(16))

# varint(v) for v >= 0x80 is _CONTINUED[v & 0x7F] + varint(v >> 7). Timestamps and indices of
# one group are consecutive, so v >> 7 repeats for up to 128 values: its varint is remembered,
# in a table cleared when it reaches this many values.
_TAILS_MAX = 4096
_tails: dict[int, bytes] = {}


def _varint_slow(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _varint(value: int) -> bytes:
    """The varint of 0 <= value < 2^64."""
    if value < 0x80:
        return _SMALL[value]
    high = value >> 7
    tail = _tails.get(high)
    if tail is None:
        if len(_tails) >= _TAILS_MAX:
            _tails.clear()
        tail = _tails[high] = _varint_slow(high)
    return _CONTINUED[value & 0x7F] + tail


def transfer_recorded_bytes(index: int, stored: StoredTransfer) -> bytes | None:
    """The leaf of `stored` at `index`, or None if a value is outside what this writes (then
    protobuf decides: it encodes it or raises, as it always did)."""
    t = stored.transfer
    kind, code, result = t.kind, t.code, stored.result
    if (
        (index | t.debit_account_id | t.credit_account_id | t.amount | t.timestamp_ns) >> 64
        or t.timeout_seconds >> 32
        or not (0 <= kind < 0x80 and 0 <= code < 0x80 and 0 < result < 0x80)
    ):
        return None  # negative or too large: both make `>> 64` non-zero
    varint = _varint
    small = _SMALL
    parts = [_TRANSFER_ID, t.id.to_bytes(16, "big")]
    # Account ids and amounts are often one-byte varints: looked up without a call.
    if value := t.debit_account_id:
        parts += (_TRANSFER_DEBIT, small[value] if value < 0x80 else varint(value))
    if value := t.credit_account_id:
        parts += (_TRANSFER_CREDIT, small[value] if value < 0x80 else varint(value))
    if value := t.amount:
        parts += (_TRANSFER_AMOUNT, small[value] if value < 0x80 else varint(value))
    if t.pending_id:
        parts += (_TRANSFER_PENDING_ID, t.pending_id.to_bytes(16, "big"))
    if t.user_data:
        parts += (_TRANSFER_USER_DATA, varint(len(t.user_data)), t.user_data)
    if kind:
        parts += (_TRANSFER_KIND, small[kind])
    if code:
        parts += (_TRANSFER_CODE, small[code])
    parts.append(_FLAGS[int(t.flags) & 15])
    if t.timeout_seconds:
        parts += (_TRANSFER_TIMEOUT, varint(t.timeout_seconds))
    timestamp = b""
    if t.timestamp_ns:
        timestamp = varint(t.timestamp_ns)
        parts += (_TRANSFER_TIMESTAMP, timestamp)
    transfer = b"".join(parts)
    recorded_size = len(transfer) + len(varint(len(transfer))) + 3  # + tag, + result field
    return b"".join(
        (
            _ENTRY_INDEX + varint(index) if index else b"",
            _ENTRY_TIMESTAMP + timestamp if timestamp else b"",
            _ENTRY_TRANSFER_RECORDED,
            varint(recorded_size),
            _RECORDED_TRANSFER,
            varint(len(transfer)),
            transfer,
            _RECORDED_RESULT,
            small[result],
        )
    )
