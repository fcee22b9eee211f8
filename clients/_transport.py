"""The SDK's transport settings and rules, shared by its two transports.

Owns: resolving the target and API key (arguments, then ORBITQ_TARGET / ORBITQ_API_KEY), the
channel options and TLS credentials, the `authorization: Bearer <key>` metadata of every call,
which statuses are retried and how long to wait between attempts (capped exponential backoff
with jitter), and translating grpc.RpcError into the SDK's exceptions in exactly one place.

The transports that apply these rules (an explicit timeout on every call; idempotent calls
retried on UNAVAILABLE, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED) are AsyncTransport in
clients/_async_transport.py and Transport, written from it, in clients/_sync_transport.py.
Callers make calls idempotent by fixing ids before the first attempt, so a retry can only
return the original outcome.

Does not own: what any call means (orbitq.clients._calls), the channels themselves
(orbitq.clients._flavour).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from orbitq.clients._defaults import TARGET_DEFAULT
from orbitq.clients.errors import (
    ERROR_OF_STATUS,
    BrokerCallError,
    ConfigurationError,
    InternalError,
)
from orbitq.v1 import (
    admin_pb2_grpc,
    agent_pb2_grpc,
    constellation_pb2_grpc,
    ledger_pb2_grpc,
    quota_pb2_grpc,
    request_pb2_grpc,
)

MESSAGE_BYTES_MAX = 32 * 1024 * 1024

_STUBS: dict[str, Callable[[Any], Any]] = {
    "admin": admin_pb2_grpc.AdminServiceStub,
    "quota": quota_pb2_grpc.QuotaServiceStub,
    "request": request_pb2_grpc.RequestServiceStub,
    "constellation": constellation_pb2_grpc.ConstellationServiceStub,
    "agent": agent_pb2_grpc.NodeAgentServiceStub,
    "ledger": ledger_pb2_grpc.LedgerServiceStub,
}

RETRYABLE_STATUSES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


@dataclass(frozen=True)
class TLSConfig:
    """Connect over TLS."""

    #: PEM of the CA that signed the broker's certificate; None = the system's roots.
    ca_cert: bytes | None = None
    #: Expected name in the broker's certificate, when it differs from the target's host.
    server_name: str | None = None

    @classmethod
    def from_ca_file(cls, path: str | Path, server_name: str | None = None) -> TLSConfig:
        return cls(Path(path).read_bytes(), server_name)


@dataclass(frozen=True)
class RetryConfig:
    """How idempotent calls are retried on transient failures."""

    #: Attempts in all, the first included; 1 disables retries.
    attempts: int = 4
    #: Wait before the first retry, doubled each time up to max_backoff, with jitter.
    initial_backoff_seconds: float = 0.1
    max_backoff_seconds: float = 2.0


@dataclass(frozen=True)
class Settings:
    target: str
    api_key: str
    timeout: float
    tls: TLSConfig | None = None
    retry: RetryConfig = field(default_factory=RetryConfig)


def resolve_settings(
    target: str | None,
    api_key: str | None,
    timeout: float,
    tls: TLSConfig | None,
    retry: RetryConfig | None,
) -> Settings:
    resolved_target = target or os.environ.get("ORBITQ_TARGET") or TARGET_DEFAULT
    resolved_key = api_key or os.environ.get("ORBITQ_API_KEY")
    if not resolved_key:
        raise ConfigurationError("no API key: pass api_key= or set ORBITQ_API_KEY")
    if not 0 < timeout <= 3600:
        raise ConfigurationError(f"timeout must be in (0, 3600] seconds, got {timeout}")
    if "://" in resolved_target:
        raise ConfigurationError(f"target is HOST:PORT, not a URL: {resolved_target!r}")
    return Settings(resolved_target, resolved_key, timeout, tls, retry or RetryConfig())


def channel_options(settings: Settings) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
        ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
    ]
    if settings.tls is not None and settings.tls.server_name:
        options.append(("grpc.ssl_target_name_override", settings.tls.server_name))
    return options


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    if settings.tls is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=settings.tls.ca_cert)


def translate(error: grpc.RpcError) -> BrokerCallError:
    """The SDK exception of a failed call."""
    code: grpc.StatusCode = error.code()
    details: str = error.details() or code.name
    return ERROR_OF_STATUS.get(code, InternalError)(code, details)


def backoff(retry: RetryConfig, attempt: int) -> float:
    ceiling = min(retry.max_backoff_seconds, retry.initial_backoff_seconds * float(2**attempt))
    return ceiling * (0.5 + random.random() / 2)  # noqa: S311  (jitter, not secrecy)


def stubs(channel: grpc.Channel | grpc.aio.Channel) -> dict[str, Any]:
    """One stub per service name of a Call (`"ledger"`, `"request"`, ...) on `channel`."""
    return {name: make(channel) for name, make in _STUBS.items()}


def call_metadata(settings: Settings) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {settings.api_key}"),)
