"""The SDK's exception tree: every failure a call can raise, named for what the caller can do.

    OrbitqError
    ├── BrokerCallError            the broker answered with a non-OK status (.code, .details)
    │   ├── InvalidArgumentError       fix the request (INVALID_ARGUMENT, OUT_OF_RANGE)
    │   ├── NotFoundError              the named thing does not exist (NOT_FOUND)
    │   ├── AlreadyExistsError         the name or id is taken (ALREADY_EXISTS)
    │   ├── FailedPreconditionError    the state forbids it, e.g. an overdraft (FAILED_PRECONDITION)
    │   ├── PermissionDeniedError      this key may not do that (PERMISSION_DENIED)
    │   ├── UnauthenticatedError       missing, malformed, unknown or revoked key (UNAUTHENTICATED)
    │   ├── ResourceExhaustedError     a limit or the broker's capacity; retry later
    │   ├── UnavailableError           cannot reach the broker, or it is stopping; retry
    │   ├── DeadlineExceededError      the call's timeout passed; retry with the same id
    │   ├── UnimplementedError         the broker does not offer this method
    │   └── InternalError              a broker bug (INTERNAL, UNKNOWN, DATA_LOSS, ...)
    ├── ConfigurationError         the client itself is misconfigured (no key, bad target)
    └── LedgerIntegrityError       the broker's signed ledger failed verification (from
                                   orbitq.ledger: a broker that rewrites history is caught here)

grpc.RpcError is translated in exactly one place (orbitq.clients._transport).
"""

from __future__ import annotations

import grpc
from orbitq.ledger.errors import LedgerIntegrityError


class OrbitqError(Exception):
    """Root of every error the SDK raises (except LedgerIntegrityError, see below)."""


class ConfigurationError(OrbitqError):
    pass


class BrokerCallError(OrbitqError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return f"{self.details} ({self.code.name})"


class InvalidArgumentError(BrokerCallError):
    pass


class NotFoundError(BrokerCallError):
    pass


class AlreadyExistsError(BrokerCallError):
    pass


class FailedPreconditionError(BrokerCallError):
    pass


class PermissionDeniedError(BrokerCallError):
    pass


class UnauthenticatedError(BrokerCallError):
    pass


class ResourceExhaustedError(BrokerCallError):
    pass


class UnavailableError(BrokerCallError):
    pass


class DeadlineExceededError(BrokerCallError):
    pass


class UnimplementedError(BrokerCallError):
    pass


class InternalError(BrokerCallError):
    pass


ERROR_OF_STATUS: dict[grpc.StatusCode, type[BrokerCallError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: FailedPreconditionError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.CANCELLED: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}

__all__ = [
    "ERROR_OF_STATUS",
    "AlreadyExistsError",
    "BrokerCallError",
    "ConfigurationError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "LedgerIntegrityError",
    "NotFoundError",
    "OrbitqError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
]
