"""Finding the field of a request that does not decode, by walking its protobuf wire format.

Owns: `bad_field`, which names (as a dotted path) the first field of an encoded message whose
bytes are not what its descriptor says: a string that is not valid UTF-8 (lone surrogates
included), or a length that runs past the end. The protobuf runtime only says "Error parsing
message"; a client needs the field.

Does not own: decoding itself (the protobuf runtime does that) or what the refusal says.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

# Nesting the walk follows (protobuf's own recursion limit is 100; our messages nest < 10).
DEPTH_MAX = 32
VARINT_BYTES_MAX = 10

_VARINT, _FIXED64, _LENGTH, _START_GROUP, _END_GROUP, _FIXED32 = range(6)


class MalformedError(Exception):
    """The wire bytes break off or use a wire type proto3 does not have (the message says)."""


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 7 * VARINT_BYTES_MAX, 7):
        if position >= len(data):
            raise MalformedError("is truncated")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    raise MalformedError("has a varint longer than 10 bytes")


def bad_field(data: bytes, descriptor: Descriptor, depth: int = 0) -> str | None:
    """What is wrong with the first field of `data` that does not decode as `descriptor` says,
    starting with its dotted path ("spec.name is not valid UTF-8 ..."), or None when no single
    field can be blamed (the bytes are broken elsewhere)."""
    position = 0
    while position < len(data):
        try:
            key, position = _varint(data, position)
        except MalformedError:
            return None
        field = descriptor.fields_by_number.get(key >> 3)
        name = field.name if field is not None else None
        try:
            position, blame = _field(data, position, key & 7, field, depth)
        except MalformedError as error:
            return _says(name, str(error))
        if blame is not None:
            return blame
    return None


def _field(
    data: bytes, position: int, wire: int, field: FieldDescriptor | None, depth: int
) -> tuple[int, str | None]:
    """The position after one field's value, and what is wrong inside it (None: nothing)."""
    if wire == _VARINT:
        return _varint(data, position)[1], None
    if wire in (_FIXED64, _FIXED32):
        position += 8 if wire == _FIXED64 else 4
        if position > len(data):
            raise MalformedError("is truncated")
        return position, None
    if wire != _LENGTH:  # groups (deprecated) and wire types that do not exist
        raise MalformedError(f"has wire type {wire}, which proto3 does not use")
    length, position = _varint(data, position)
    chunk = data[position : position + length]
    if len(chunk) < length:
        raise MalformedError("is truncated")
    return position + length, _blame(chunk, field, depth) if field is not None else None


def _says(name: str | None, what: str) -> str | None:
    return f"{name} {what}" if name is not None else None


def _blame(chunk: bytes, field: FieldDescriptor, depth: int) -> str | None:
    if field.type == FieldDescriptor.TYPE_STRING:
        try:
            chunk.decode("utf-8")  # strict: rejects lone surrogates and overlong forms
        except UnicodeDecodeError as error:
            return (
                f"{field.name} is not valid UTF-8 (byte {error.start}: {error.reason}; lone"
                " surrogates are not allowed)"
            )
        return None
    if field.message_type is not None and depth < DEPTH_MAX:
        inner = bad_field(chunk, field.message_type, depth + 1)
        if inner is not None:
            return f"{field.name}.{inner}"
    return None
