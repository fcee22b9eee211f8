"""Every number and text a request carries, checked once against what the databases store.

Owns: `out_of_range`, which walks a decoded request by its descriptor and names the first
value that no column can hold: a `uint64`/`fixed64` above 2^63 - 1 (SQLite's INTEGER and
PostgreSQL's BIGINT are signed 64-bit), a `google.protobuf.Timestamp` whose nanoseconds since
the epoch do not fit in 64 bits (the broker stores instants as int64 nanoseconds) or whose
nanos are not 0..999,999,999, or a string with a NUL character (PostgreSQL's text cannot hold
one). Read from the descriptors, so a new field or RPC is covered without a line here.

Exempt: `orbitq.v1.Transfer` (CreateTransfers), whose full uint64 ranges are the ledger's
business: TigerBeetle's rules answer an id or amount at the limit with a per-transfer result
(`debit_account_id_must_not_be_int_max`, ...), which is data, not a refused call.

Does not own: each field's own meaning (a method may still refuse a number that fits).
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

INT64_MAX = 2**63 - 1
NS_PER_SECOND = 1_000_000_000
# A Timestamp whose seconds*1e9 + nanos fits a signed 64-bit integer (1677-09-21 .. 2262-04-11).
TIMESTAMP_SECONDS_MIN = -(2**63) // NS_PER_SECOND + 1
TIMESTAMP_SECONDS_MAX = INT64_MAX // NS_PER_SECOND - 1
NANOS_MAX = NS_PER_SECOND - 1

TIMESTAMP = "google.protobuf.Timestamp"
LEDGER_CHECKED = frozenset({"orbitq.v1.Transfer"})
# Nesting followed (our messages nest fewer than 10 deep; protobuf itself stops at 100).
DEPTH_MAX = 32

_UNSIGNED_64 = frozenset({FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64})
_CHECKED_SCALARS = _UNSIGNED_64 | {FieldDescriptor.TYPE_STRING}


@functools.cache
def _checked(descriptor: Descriptor, depth: int = 0) -> bool:
    """Whether a message of this type can carry a number out of range (cached per type)."""
    if descriptor.full_name == TIMESTAMP:
        return True
    if descriptor.full_name in LEDGER_CHECKED or depth >= DEPTH_MAX:
        return False
    for field in descriptor.fields:
        if field.type in _CHECKED_SCALARS:
            return True
        inner = field.message_type
        if inner is not None and _checked(inner, depth + 1):
            return True
    return False


def out_of_range(message: Message, depth: int = 0) -> str | None:
    """Why a number of `message` is out of range, naming its field; None when all fit."""
    descriptor = message.DESCRIPTOR
    if not _checked(descriptor) or depth >= DEPTH_MAX:
        return None
    if descriptor.full_name == TIMESTAMP:
        return _timestamp(message)
    for field, value in message.ListFields():
        values = value if _repeated(field) else (value,)
        if field.type in _UNSIGNED_64:
            for number in values:
                if number > INT64_MAX:
                    return f"{field.name} = {number} is above the maximum {INT64_MAX} (2^63 - 1)"
        elif field.type == FieldDescriptor.TYPE_STRING:
            for text in values:
                if "\x00" in text:
                    return f"{field.name} contains a NUL character (text may not)"
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            problem = _in_messages(field, value if _is_map(field) else values, depth)
            if problem is not None:
                return problem
    return None


def _in_messages(field: FieldDescriptor, values: Any, depth: int) -> str | None:
    if _is_map(field):
        entry = field.message_type
        assert entry is not None
        kind = entry.fields_by_name["value"].type
        for key, inner in values.items():
            if (isinstance(key, str) and "\x00" in key) or (
                kind == FieldDescriptor.TYPE_STRING and "\x00" in inner
            ):
                return f"{field.name} has a key or value with a NUL character (text may not)"
            if kind in _UNSIGNED_64 and inner > INT64_MAX:
                return f"{field.name}[{key!r}] = {inner} is above the maximum {INT64_MAX}"
            if isinstance(inner, Message):
                problem = out_of_range(inner, depth + 1)
                if problem is not None:
                    return f"{field.name}[{key!r}].{problem}"
        return None
    for inner in values:
        problem = out_of_range(inner, depth + 1)
        if problem is not None:
            return f"{field.name}.{problem}"
    return None


def _repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def _is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE
        and entry is not None
        and entry.GetOptions().map_entry
    )


def _timestamp(message: Message) -> str | None:
    seconds: int = message.seconds  # type: ignore[attr-defined]
    nanos: int = message.nanos  # type: ignore[attr-defined]
    if not TIMESTAMP_SECONDS_MIN <= seconds <= TIMESTAMP_SECONDS_MAX:
        return (
            f"seconds = {seconds} is outside {TIMESTAMP_SECONDS_MIN}..{TIMESTAMP_SECONDS_MAX}"
            " (1677-09-21 to 2262-04-11: instants are stored as 64-bit nanoseconds)"
        )
    if not 0 <= nanos <= NANOS_MAX:
        return f"nanos = {nanos} is outside 0..{NANOS_MAX}"
    return None
