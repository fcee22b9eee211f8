"""orbitq.clients: the Python SDK, the `orbitq` CLI and the demo.

Owns: talking to a broker over gRPC, mapping status codes to typed exceptions, client-side
verification of the signed ledger. Never imports orbitq.services: importing the SDK does not
pull in SQLModel or the server.
"""

from orbitq.clients._calls import Page
from orbitq.clients._client import AsyncBrokerClient, BrokerClient
from orbitq.clients._transport import RetryConfig, TLSConfig
from orbitq.clients.errors import (
    AlreadyExistsError,
    BrokerCallError,
    BrokerIntegrityError,
    BrokerKeyChangedError,
    CheckpointSignatureError,
    ConfigurationError,
    DeadlineExceededError,
    EntryVerificationError,
    FailedPreconditionError,
    HistoryRewrittenError,
    InternalError,
    InvalidArgumentError,
    LedgerIntegrityError,
    NotFoundError,
    OrbitqError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from orbitq.clients.ids import format_id, new_id, parse_id
from orbitq.clients.models import (
    Account,
    AccountCreation,
    ApiKey,
    Checkpoint,
    IssuedApiKey,
    LedgerEntry,
    LogVerification,
    Proof,
    PublicKey,
    Tenant,
    TransferOutcome,
    TransferRecord,
    TransferSpec,
)

__all__ = [
    "Account",
    "AccountCreation",
    "AlreadyExistsError",
    "ApiKey",
    "AsyncBrokerClient",
    "BrokerCallError",
    "BrokerClient",
    "BrokerIntegrityError",
    "BrokerKeyChangedError",
    "Checkpoint",
    "CheckpointSignatureError",
    "ConfigurationError",
    "DeadlineExceededError",
    "EntryVerificationError",
    "FailedPreconditionError",
    "HistoryRewrittenError",
    "InternalError",
    "InvalidArgumentError",
    "IssuedApiKey",
    "LedgerEntry",
    "LedgerIntegrityError",
    "LogVerification",
    "NotFoundError",
    "OrbitqError",
    "Page",
    "PermissionDeniedError",
    "Proof",
    "PublicKey",
    "ResourceExhaustedError",
    "RetryConfig",
    "TLSConfig",
    "Tenant",
    "TransferOutcome",
    "TransferRecord",
    "TransferSpec",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "format_id",
    "new_id",
    "parse_id",
]
