"""The transport of one client: unary calls with a timeout and retries, and server streams.

Written once, for asyncio, in clients/_async_transport.py; scripts/unasync.py writes the
blocking twin, clients/_sync_transport.py, from it (`make sdk`; `make sdk-check` fails when
the two differ). Edit only the asyncio source.

Owns: running a call on the channel with the API key and an explicit timeout, retrying an
idempotent call on a transient status after a backoff, and turning every grpc.RpcError into
the SDK's exception (orbitq.clients._transport.translate, the one place that maps them).

Does not own: the settings and rules it applies (orbitq.clients._transport), what a call
means (orbitq.clients._calls).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from orbitq.clients import _flavour
from orbitq.clients._transport import (
    RETRYABLE_STATUSES,
    Settings,
    backoff,
    call_metadata,
    stubs,
    translate,
)


class AsyncTransport:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._channel = _flavour.async_open_channel(settings)
        self._stubs = stubs(self._channel)
        self._metadata = call_metadata(settings)

    async def close(self) -> None:
        await _flavour.async_close_channel(self._channel)

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
                if failure.code not in RETRYABLE_STATUSES or attempt == attempts - 1:
                    raise failure from None
            await _flavour.async_sleep(backoff(self.settings.retry, attempt))
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
