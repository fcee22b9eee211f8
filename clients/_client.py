"""BrokerClient (blocking) and AsyncBrokerClient (asyncio): the SDK's public face.

Both take a target (HOST:PORT; default ORBITQ_TARGET, else 127.0.0.1:7707) and an API key
(default ORBITQ_API_KEY), an explicit per-call timeout, optional TLS and retry settings. Every
method is defined once in orbitq.clients._calls; these classes only run the calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TypeVar

from orbitq.clients import _calls
from orbitq.clients._calls import Call, Page
from orbitq.clients._transport import (
    DEFAULT_TIMEOUT_SECONDS,
    AsyncTransport,
    RetryConfig,
    SyncTransport,
    TLSConfig,
    resolve_settings,
)
from orbitq.clients.ids import IdLike
from orbitq.clients.models import (
    Account,
    ApiKey,
    IssuedApiKey,
    Tenant,
    TransferOutcome,
    TransferRecord,
    TransferSpec,
)

T = TypeVar("T")


class BrokerClient:
    """A blocking client of one broker. Thread-safe; close it (or use `with`)."""

    def __init__(
        self,
        target: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        tls: TLSConfig | None = None,
        retry: RetryConfig | None = None,
    ) -> None:
        self._transport = SyncTransport(resolve_settings(target, api_key, timeout, tls, retry))

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def _run(self, call: Call[T]) -> T:
        response = self._transport.unary(
            call.service, call.method, call.request, idempotent=call.idempotent
        )
        return call.parse(response)

    # -- tenants and keys ----------------------------------------------------------------------

    def create_tenant(self, name: str, display_name: str = "") -> Tenant:
        """Operator: create a tenant (and its cpu, storage and link accounts)."""
        return self._run(_calls.create_tenant(name, display_name))

    def list_tenants(self, page_size: int = 0, page_token: str = "") -> Page[Tenant]:
        return self._run(_calls.list_tenants(page_size, page_token))

    def issue_api_key(
        self, role: str = "tenant", tenant: str = "", node: str = "", label: str = ""
    ) -> IssuedApiKey:
        """A new key; its secret is in `.api_key` and is never shown again."""
        return self._run(_calls.issue_api_key(role, tenant, node, label))

    def revoke_api_key(self, key_id: str) -> ApiKey:
        return self._run(_calls.revoke_api_key(key_id))

    # -- quota ---------------------------------------------------------------------------------

    def mint(
        self,
        tenant: str,
        *,
        cpu: int = 0,
        storage: int = 0,
        link: int = 0,
        id: IdLike | None = None,
    ) -> list[TransferOutcome]:
        """Operator: new tokens for `tenant`. Retries reuse `id` (made here when not given)."""
        return self._run(_calls.mint(tenant, cpu, storage, link, id))

    def balances(
        self, tenant: str = "", *, system: bool = False, at_timestamp_ns: int = 0
    ) -> list[Account]:
        """A tenant's accounts (your own by default), or the system accounts (operator)."""
        return self._run(_calls.balances(tenant, system, at_timestamp_ns))

    def transfer(
        self,
        to_tenant: str,
        *,
        cpu: int = 0,
        storage: int = 0,
        link: int = 0,
        from_tenant: str = "",
        id: IdLike | None = None,
    ) -> list[TransferOutcome]:
        """Move tokens to another tenant; all kinds succeed or fail together.

        An overdraft raises FailedPreconditionError naming the kind and the shortfall.
        """
        return self._run(_calls.transfer(to_tenant, cpu, storage, link, from_tenant, id))

    def list_transfers(
        self,
        tenant: str = "",
        *,
        account_id: int = 0,
        kind: str = "",
        code: str = "",
        since_ns: int = 0,
        until_ns: int = 0,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[TransferRecord]:
        """Transfers that moved balances, newest first."""
        return self._run(
            _calls.list_transfers(
                tenant, account_id, kind, code, since_ns, until_ns, page_size, page_token
            )
        )

    def create_transfers(self, transfers: Sequence[TransferSpec]) -> list[TransferOutcome]:
        """Operator batch with the full two-phase semantics; one outcome per transfer."""
        return self._run(_calls.create_transfers(transfers))


class AsyncBrokerClient:
    """The asyncio twin of BrokerClient (same methods, awaitable)."""

    def __init__(
        self,
        target: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        tls: TLSConfig | None = None,
        retry: RetryConfig | None = None,
    ) -> None:
        self._transport = AsyncTransport(resolve_settings(target, api_key, timeout, tls, retry))

    async def __aenter__(self) -> AsyncBrokerClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    async def _run(self, call: Call[T]) -> T:
        response = await self._transport.unary(
            call.service, call.method, call.request, idempotent=call.idempotent
        )
        return call.parse(response)

    async def create_tenant(self, name: str, display_name: str = "") -> Tenant:
        return await self._run(_calls.create_tenant(name, display_name))

    async def list_tenants(self, page_size: int = 0, page_token: str = "") -> Page[Tenant]:
        return await self._run(_calls.list_tenants(page_size, page_token))

    async def issue_api_key(
        self, role: str = "tenant", tenant: str = "", node: str = "", label: str = ""
    ) -> IssuedApiKey:
        return await self._run(_calls.issue_api_key(role, tenant, node, label))

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        return await self._run(_calls.revoke_api_key(key_id))

    async def mint(
        self,
        tenant: str,
        *,
        cpu: int = 0,
        storage: int = 0,
        link: int = 0,
        id: IdLike | None = None,
    ) -> list[TransferOutcome]:
        return await self._run(_calls.mint(tenant, cpu, storage, link, id))

    async def balances(
        self, tenant: str = "", *, system: bool = False, at_timestamp_ns: int = 0
    ) -> list[Account]:
        return await self._run(_calls.balances(tenant, system, at_timestamp_ns))

    async def transfer(
        self,
        to_tenant: str,
        *,
        cpu: int = 0,
        storage: int = 0,
        link: int = 0,
        from_tenant: str = "",
        id: IdLike | None = None,
    ) -> list[TransferOutcome]:
        return await self._run(_calls.transfer(to_tenant, cpu, storage, link, from_tenant, id))

    async def list_transfers(
        self,
        tenant: str = "",
        *,
        account_id: int = 0,
        kind: str = "",
        code: str = "",
        since_ns: int = 0,
        until_ns: int = 0,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[TransferRecord]:
        return await self._run(
            _calls.list_transfers(
                tenant, account_id, kind, code, since_ns, until_ns, page_size, page_token
            )
        )

    async def create_transfers(self, transfers: Sequence[TransferSpec]) -> list[TransferOutcome]:
        return await self._run(_calls.create_transfers(transfers))
