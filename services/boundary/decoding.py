"""Requests refused before their method runs: bytes that do not decode, numbers out of range.

grpc deserializes a request before any interceptor's behaviour sees it, and a deserializer that
raises makes grpc itself answer INTERNAL ("Exception deserializing request!") and log a
traceback. So every method's deserializer is wrapped (`tolerant`): bytes that do not decode
(invalid UTF-8 or a lone surrogate in a string, a truncated field) and decoded requests with a
number no column can hold (orbitq.services.boundary.ranges) become a `Refused` value naming
the field, which the error-mapping interceptor turns into INVALID_ARGUMENT — quietly: a
hostile request is the client's problem, not an incident.

Does not own: the status code (orbitq.services.interceptors.STATUS_OF) or a method's own checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from orbitq.services.boundary.ranges import out_of_range
from orbitq.services.boundary.wire import bad_field


@dataclass(frozen=True, slots=True)
class Refused:
    """A request that reached the server but is refused before its method runs."""

    reason: str


Deserializer = Callable[[bytes], Any]


def descriptor_of(deserializer: Deserializer | None) -> Descriptor | None:
    """The message type a generated `Message.FromString` deserializer decodes, if it is one."""
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return descriptor if isinstance(descriptor, Descriptor) else None


def tolerant(deserializer: Deserializer | None) -> Deserializer | None:
    """`deserializer`, returning a `Refused` instead of raising (None stays None: raw bytes)."""
    if deserializer is None:
        return None
    descriptor = descriptor_of(deserializer)
    name = descriptor.full_name if descriptor is not None else "the request message"

    def decode(data: bytes) -> Any:
        try:
            request = deserializer(data)
        except Exception:  # DecodeError, or anything a decoder raises on hostile bytes
            return Refused(_undecodable(data, descriptor, name))
        if isinstance(request, Message):
            problem = out_of_range(request)
            if problem is not None:
                return Refused(f"{name}: {problem}")
        return request

    return decode


def _undecodable(data: bytes, descriptor: Descriptor | None, name: str) -> str:
    field = bad_field(data, descriptor) if descriptor is not None else None
    if field is None:
        return f"the request is not a valid {name} (protobuf encoding)"
    return f"{name}: field {field}"
