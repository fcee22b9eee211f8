"""Requests for any RPC, read from its descriptor: hypothesis strategies and hostile cases.

`messages(descriptor)` draws well-formed messages of any type (every field kind, nesting,
repeated fields and maps), biased towards the values that break brokers: 0, -1, 2^63 - 1,
2^64 - 1, empty and 100 KB strings, malformed ids, unknown enum values. `hostile(descriptor)`
lists deterministic cases, one field at a time (to two levels deep): those edge values, huge
repeated fields, and wire bytes no client library would send (invalid UTF-8, lone
surrogates), as raw request bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

F = FieldDescriptor
DEPTH_MAX = 2
BIG_STRING = "x" * 100_000
HUGE_REPEATED = 20_000
BAD_UTF8 = (b"\xed\xa0\x80", b"\xff\xfe", b"\xc0\xaf", b"ok\xe2\x82")  # lone surrogate, ...
MALFORMED_IDS = ("not-an-id", "../../etc/passwd", "0" * 64, "sha256:zz", "\u202e", "a\x00b")

_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
EDGES = (0, -1, 1, 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1, -(2**63))


def edges(field: FieldDescriptor) -> list[Any]:
    """The hostile values of one scalar field that its type can carry."""
    kind = field.type
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return [value for value in EDGES if low <= value <= high]
    if kind == F.TYPE_STRING:
        return ["", BIG_STRING, *MALFORMED_IDS]
    if kind == F.TYPE_BYTES:
        return [b"", b"\xff" * 16, b"\x00" * 16, BIG_STRING.encode()]
    if kind == F.TYPE_ENUM:
        assert field.enum_type is not None
        return [*(v.number for v in field.enum_type.values), 999, -5]
    if kind in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return [0.0, -1.0, float("nan"), float("inf"), 1e308]
    if kind == F.TYPE_BOOL:
        return [True]
    return []


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    hostile = st.sampled_from(edges(field)) if edges(field) else st.nothing()
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return hostile | st.integers(low, high) | st.integers(0, 1000)
    if kind == F.TYPE_STRING:
        return hostile | st.text(max_size=24)
    if kind == F.TYPE_BYTES:
        return hostile | st.binary(max_size=40)
    if kind == F.TYPE_ENUM:
        return hostile | st.integers(-(2**31), 2**31 - 1)
    if kind in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return hostile | st.floats(width=32 if kind == F.TYPE_FLOAT else 64)
    return st.booleans()


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Well-formed messages of `descriptor`'s type with any fields set."""
    cls = GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        value = _value(field, depth)
        if value is not None:
            fields[field.name] = value
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(cls, values))


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        if value.message_type is not None:
            return None  # no map of messages in the contract
        return st.dictionaries(_scalar(key), _scalar(value), max_size=3)
    if entry is not None:
        if depth >= DEPTH_MAX:
            return None
        one = messages(entry, depth + 1)
    else:
        one = _scalar(field)
    if field.is_repeated:
        return st.lists(one, max_size=3)
    return one


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        _assign(message, name, value)
    return message


def _assign(message: Message, name: str, value: Any) -> None:
    field = message.DESCRIPTOR.fields_by_name[name]
    target = getattr(message, name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        target.update(value)
    elif field.is_repeated:
        if field.message_type is not None:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif field.message_type is not None:
        target.CopyFrom(value)
    else:
        setattr(message, name, value)


# -- hostile cases, one field at a time ----------------------------------------------------------


def hostile(descriptor: Descriptor) -> Iterator[tuple[str, bytes]]:
    """(what, request bytes): every hostile case of every field, to two levels deep."""
    cls = GetMessageClass(descriptor)
    for path, field in _paths(descriptor, ()):
        if field.is_repeated and field.message_type is None:
            sample = edges(field)[:1] or [0]
            yield _named(path, f"{HUGE_REPEATED} items"), _set(cls, path, sample * HUGE_REPEATED)
        elif field.is_repeated and not _is_map(field):
            yield _named(path, f"{HUGE_REPEATED} empty items"), _set(cls, path, HUGE_REPEATED)
        if field.message_type is None and not field.is_repeated:
            for value in edges(field):
                yield _named(path, _short(value)), _set(cls, path, value)
        if field.type == F.TYPE_STRING and not field.is_repeated:
            for bad in BAD_UTF8:
                yield _named(path, f"bad UTF-8 {bad!r}"), _raw_string(descriptor, path, bad)


def _is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return entry is not None and bool(entry.GetOptions().map_entry)


def _paths(
    descriptor: Descriptor, prefix: tuple[FieldDescriptor, ...]
) -> Iterator[tuple[tuple[FieldDescriptor, ...], FieldDescriptor]]:
    for field in descriptor.fields:
        path = (*prefix, field)
        yield path, field
        inner = field.message_type
        if inner is not None and not field.is_repeated and len(path) < DEPTH_MAX:
            yield from _paths(inner, path)


def _named(path: tuple[FieldDescriptor, ...], what: str) -> str:
    return ".".join(f.name for f in path) + " = " + what


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} chars)"


def _set(cls: type[Message], path: tuple[FieldDescriptor, ...], value: Any) -> bytes:
    message = cls()
    target = message
    for field in path[:-1]:
        target = getattr(target, field.name)
    last = path[-1]
    if last.is_repeated and last.message_type is not None:
        container = getattr(target, last.name)
        for _ in range(value):
            container.add()
    elif last.is_repeated:
        getattr(target, last.name).extend(value)
    else:
        setattr(target, last.name, value)
    return message.SerializeToString()


def _raw_string(descriptor: Descriptor, path: tuple[FieldDescriptor, ...], bad: bytes) -> bytes:
    """The wire bytes of a message whose string field at `path` holds `bad` (not UTF-8)."""
    payload = _length_delimited(path[-1].number, bad)
    for field in reversed(path[:-1]):
        payload = _length_delimited(field.number, payload)
    return payload


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
