"""The broker's domain errors: what went wrong, in words a person can act on.

Owns: the error tree below. Each kind maps to exactly one gRPC status in one table
(orbitq.services.interceptors.STATUS_OF); nothing else in the broker chooses status codes.

    BrokerError
    ├── InvalidArgumentError     the request itself is wrong (field, size, format)
    ├── NotFoundError            a named tenant, request, node, ... does not exist
    ├── AlreadyExistsError       creating something whose name is taken
    ├── FailedPreconditionError  valid, but the state forbids it (overdraft, wrong state)
    ├── PermissionDeniedError    authenticated, but not allowed to touch this
    ├── UnauthenticatedError     no key, a malformed key, an unknown or revoked key
    ├── ResourceExhaustedError   a limit or the broker's capacity is reached; retry later
    └── UnavailableError         the broker is shutting down

Does not own: transport (gRPC) or the ledger's per-transfer results (those are data, not
errors).
"""

from __future__ import annotations


class BrokerError(Exception):
    """Root of every error the broker reports to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(BrokerError):
    pass


class NotFoundError(BrokerError):
    pass


class AlreadyExistsError(BrokerError):
    pass


class FailedPreconditionError(BrokerError):
    pass


class PermissionDeniedError(BrokerError):
    pass


class UnauthenticatedError(BrokerError):
    pass


class ResourceExhaustedError(BrokerError):
    pass


class UnavailableError(BrokerError):
    pass
