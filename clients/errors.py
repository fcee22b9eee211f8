"""The SDK's exception tree: every failure a call can raise, named for what the caller can do.

    OrbitqError                    the root: `except OrbitqError` catches all the SDK raises
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
    │   └── InternalError              a broker bug (INTERNAL, UNKNOWN, DATA_LOSS)
    ├── ConfigurationError         the client itself is misconfigured (no key, bad target,
    │                              an unreadable trust state file)
    └── BrokerIntegrityError       what the broker presented fails verification (.origin)
        ├── HistoryRewrittenError      a checkpoint that is not an extension of the last
        │                              one this client verified (fork, rollback, rewrite)
        ├── CheckpointSignatureError   a checkpoint not validly signed by the pinned key
        ├── BrokerKeyChangedError      the broker now presents another key than the pinned one
        └── EntryVerificationError     an entry or proof the broker served is wrong (.index)

BrokerIntegrityError is also a LedgerIntegrityError, the root of orbitq.ledger's errors (the
checks it runs on what a broker served), so `except LedgerIntegrityError` catches every
integrity failure the SDK reports, as it always did; this module re-exports that name for it.
The SDK never raises a bare LedgerIntegrityError: it turns each into a BrokerIntegrityError
naming what the broker did. Catch LedgerIntegrityError before OrbitqError where the two are
handled differently (the CLI exits with its own code for a failed verification).

grpc.RpcError is translated in exactly one place (orbitq.clients._transport), with
ERROR_OF_STATUS below: one exception class for every status but OK.
"""

from __future__ import annotations

import grpc

from orbitq.ledger.errors import LedgerIntegrityError


class OrbitqError(Exception):
    """Root of every error the SDK raises."""


class BrokerIntegrityError(LedgerIntegrityError, OrbitqError):
    """The broker presented ledger data that fails verification: it misbehaves, or is not the
    broker this client trusted. The message says what the broker did."""

    def __init__(self, origin: str, message: str) -> None:
        super().__init__(message)
        self.origin = origin


class HistoryRewrittenError(BrokerIntegrityError):
    """A checkpoint is not an extension of the last one this client verified: the log shrank,
    forked (two roots for one size), or was rewritten."""


class CheckpointSignatureError(BrokerIntegrityError):
    """A checkpoint is not validly signed by the pinned key for its origin."""


class BrokerKeyChangedError(BrokerIntegrityError):
    """The broker presents a signing key other than the one pinned for its origin."""


class EntryVerificationError(BrokerIntegrityError):
    """An entry, or a proof about it, that the broker served does not verify (`.index`)."""

    def __init__(self, origin: str, index: int, message: str) -> None:
        super().__init__(origin, message)
        self.index = index


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
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
}

__all__ = [
    "ERROR_OF_STATUS",
    "AlreadyExistsError",
    "BrokerCallError",
    "BrokerIntegrityError",
    "BrokerKeyChangedError",
    "CheckpointSignatureError",
    "ConfigurationError",
    "DeadlineExceededError",
    "EntryVerificationError",
    "FailedPreconditionError",
    "HistoryRewrittenError",
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
