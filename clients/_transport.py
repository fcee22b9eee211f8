"""The SDK's only I/O: channels, credentials, timeouts, retries and error translation.

Owns: resolving the target and API key (arguments, then ORBITQ_TARGET / ORBITQ_API_KEY),
building plain or TLS channels (sync and asyncio), sending `authorization: Bearer <key>` on
every call, an explicit timeout on every call, retrying idempotent calls on transient statuses
(UNAVAILABLE, RESOURCE_EXHAUSTED, and DEADLINE_EXCEEDED) with capped exponential backoff, and
translating grpc.RpcError into the SDK's exceptions in exactly one place.

Callers make calls idempotent by fixing ids before the first attempt, so a retry can only
return the original outcome.

Does not own: what any call means (orbitq.clients._client).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

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

DEFAULT_TARGET = "127.0.0.1:7707"
DEFAULT_TIMEOUT_SECONDS = 10.0
MESSAGE_BYTES_MAX = 32 * 1024 * 1024

_STUBS: dict[str, Callable[[Any], Any]] = {
    "admin": admin_pb2_grpc.AdminServiceStub,
    "quota": quota_pb2_grpc.QuotaServiceStub,
    "request": request_pb2_grpc.RequestServiceStub,
    "constellation": constellation_pb2_grpc.ConstellationServiceStub,
    "agent": agent_pb2_grpc.NodeAgentServiceStub,
    "ledger": ledger_pb2_grpc.LedgerServiceStub,
}

_RETRYABLE = frozenset(
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
    resolved_target = target or os.environ.get("ORBITQ_TARGET") or DEFAULT_TARGET
    resolved_key = api_key or os.environ.get("ORBITQ_API_KEY")
    if not resolved_key:
        raise ConfigurationError("no API key: pass api_key= or set ORBITQ_API_KEY")
    if not 0 < timeout <= 3600:
        raise ConfigurationError(f"timeout must be in (0, 3600] seconds, got {timeout}")
    if "://" in resolved_target:
        raise ConfigurationError(f"target is HOST:PORT, not a URL: {resolved_target!r}")
    return Settings(resolved_target, resolved_key, timeout, tls, retry or RetryConfig())


def _channel_options(settings: Settings) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
        ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
    ]
    if settings.tls is not None and settings.tls.server_name:
        options.append(("grpc.ssl_target_name_override", settings.tls.server_name))
    return options


def _credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    if settings.tls is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=settings.tls.ca_cert)


def translate(error: grpc.RpcError) -> BrokerCallError:
    """The SDK exception of a failed call."""
    code: grpc.StatusCode = error.code()
    details: str = error.details() or code.name
    return ERROR_OF_STATUS.get(code, InternalError)(code, details)


def _backoff(retry: RetryConfig, attempt: int) -> float:
    ceiling = min(retry.max_backoff_seconds, retry.initial_backoff_seconds * float(2**attempt))
    return ceiling * (0.5 + random.random() / 2)  # noqa: S311  (jitter, not secrecy)


class SyncTransport:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        credentials = _credentials(settings)
        options = _channel_options(settings)
        if credentials is None:
            self._channel = grpc.insecure_channel(settings.target, options=options)
        else:
            self._channel = grpc.secure_channel(settings.target, credentials, options=options)
        self._stubs = {name: make(self._channel) for name, make in _STUBS.items()}
        self._metadata = (("authorization", f"Bearer {settings.api_key}"),)

    def close(self) -> None:
        self._channel.close()

    def unary(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout: float | None = None,
    ) -> Any:
        call = getattr(self._stubs[service], method)
        attempts = self.settings.retry.attempts if idempotent else 1
        for attempt in range(attempts):
            try:
                return call(
                    request,
                    timeout=timeout or self.settings.timeout,
                    metadata=self._metadata,
                )
            except grpc.RpcError as error:
                failure = translate(error)
                if failure.code not in _RETRYABLE or attempt == attempts - 1:
                    raise failure from None
            time.sleep(_backoff(self.settings.retry, attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def stream(
        self, service: str, method: str, request: Any, timeout: float | None
    ) -> Iterator[Any]:
        call = getattr(self._stubs[service], method)
        try:
            yield from call(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise translate(error) from None


class AsyncTransport:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        credentials = _credentials(settings)
        options = _channel_options(settings)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(settings.target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(settings.target, credentials, options=options)
        self._stubs = {name: make(self._channel) for name, make in _STUBS.items()}
        self._metadata = (("authorization", f"Bearer {settings.api_key}"),)

    async def close(self) -> None:
        await self._channel.close(None)

    async def unary(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout: float | None = None,
    ) -> Any:
        call = getattr(self._stubs[service], method)
        attempts = self.settings.retry.attempts if idempotent else 1
        for attempt in range(attempts):
            try:
                return await call(
                    request,
                    timeout=timeout or self.settings.timeout,
                    metadata=self._metadata,
                )
            except grpc.RpcError as error:
                failure = translate(error)
                if failure.code not in _RETRYABLE or attempt == attempts - 1:
                    raise failure from None
            await asyncio.sleep(_backoff(self.settings.retry, attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def stream(
        self, service: str, method: str, request: Any, timeout: float | None
    ) -> AsyncIterator[Any]:
        call = getattr(self._stubs[service], method)
        try:
            async for message in call(request, timeout=timeout, metadata=self._metadata):
                yield message
        except grpc.RpcError as error:
            raise translate(error) from None
