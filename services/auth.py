"""Who is calling: API keys to principals, and the helpers every permission check uses.

Owns: authenticating an `authorization: Bearer <key>` value against the stored key hashes (with
a small, bounded, short-lived cache so a busy tenant's calls do not each hit the database),
the current principal of an RPC (a context variable set by the auth interceptor), and the
helpers every permission check is written with (`Principal`): roles, tenant isolation (a
tenant key acts only on its own tenant) and node isolation (a node key only for its node).
Which role may do what is written in each domain service (tenants, quota, requests,
constellation, signed_log); servicers check nothing.

Does not own: issuing keys (orbitq.services.tenants) or transport.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import sqlalchemy as sa

from orbitq.services.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from orbitq.services.identity import api_keys
from orbitq.services.identity.api_keys import Role
from orbitq.services.identity.tables import API_KEYS

# How long a verified key is trusted without asking the database again. Revocation on this
# broker takes effect at once (the cache entry is dropped); on other replicas within this time.
AUTH_CACHE_SECONDS = 5.0
AUTH_CACHE_ENTRIES_MAX = 10_000


# Every role: the rule of the calls any authenticated key may make (the signed log, the sky).
ANY_ROLE: tuple[Role, ...] = tuple(Role)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and the only way a domain service writes a check of who may do what.

    A check names the action in words ("minting tokens"); a refusal is PERMISSION_DENIED
    saying who may, and a name an operator must give and did not is INVALID_ARGUMENT."""

    key_id: str
    role: Role
    tenant: str | None = None
    node: str | None = None

    def __post_init__(self) -> None:
        # A key belongs to a tenant exactly when its role is tenant, to a node when node.
        assert (self.tenant is not None) == (self.role is Role.TENANT), self
        assert (self.node is not None) == (self.role is Role.NODE), self

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    def require_operator(self, action: str) -> None:
        if not self.is_operator:
            raise PermissionDeniedError(f"{action} needs an operator key")

    def require_role(self, *roles: Role, action: str) -> None:
        if self.role not in roles:
            allowed = " or ".join(role.value for role in roles)
            raise PermissionDeniedError(f"{action} needs a key of role {allowed}")

    def tenant_scope(self, requested: str, action: str) -> str:
        """The tenant this call acts on: a tenant key's own (or PERMISSION_DENIED), or for an
        operator the named one (required). A node key acts on no tenant."""
        return self._scope(Role.TENANT, self.tenant, requested, action)

    def node_scope(self, requested: str, action: str) -> str:
        """The node this call acts on: a node key's own (or PERMISSION_DENIED), or for an
        operator the named one (required). A tenant key acts for no node."""
        return self._scope(Role.NODE, self.node, requested, action)

    def acts_for(self, tenant: str | None) -> bool:
        """Whether this key may act on something `tenant` owns: an operator on anything, a
        tenant key on its own tenant's things, a node key on no tenant's."""
        return self.is_operator or (self.role is Role.TENANT and tenant == self.tenant)

    def _scope(self, owner: Role, own: str | None, requested: str, action: str) -> str:
        what = owner.value
        if self.role is owner:
            assert own is not None
            if requested and requested != own:
                raise PermissionDeniedError(
                    f"a key of {what} {own!r} cannot {action} {what} {requested!r}"
                )
            return own
        if self.is_operator:
            if not requested:
                raise InvalidArgumentError(f"name the {what} to {action} (operator key)")
            return requested
        raise PermissionDeniedError(f"a {self.role.value} key cannot {action} a {what}")


# The broker acting as itself (`orbitq init`, the simulator, the broker's own jobs): an
# operator that is no API key. Key ids are 16 base32 characters, so no key is named "system".
SYSTEM = Principal(key_id="system", role=Role.OPERATOR)


_current: ContextVar[Principal | None] = ContextVar("orbitq_principal", default=None)


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise UnauthenticatedError("no credentials: send `authorization: Bearer <api key>`")
    return principal


def set_current_principal(principal: Principal | None) -> object:
    return _current.set(principal)


def reset_current_principal(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


class Authenticator:
    def __init__(
        self,
        engine: sa.Engine,
        now_ns: Callable[[], int],
        *,
        cache_seconds: float = AUTH_CACHE_SECONDS,
    ) -> None:
        self._engine = engine
        self._now_ns = now_ns
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise UnauthenticatedError("no credentials: send `authorization: Bearer <api key>`")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise UnauthenticatedError("the authorization header must be `Bearer <api key>`")
        token = token.strip()
        cached = self._cached(token)
        if cached is not None:
            return cached
        parsed = api_keys.parse(token)
        if parsed is None:
            raise UnauthenticatedError("malformed API key: expected oq_<key id>_<secret>")
        key_id, secret = parsed
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(
                    API_KEYS.c.secret_hash,
                    API_KEYS.c.role,
                    API_KEYS.c.tenant,
                    API_KEYS.c.node,
                    API_KEYS.c.revoked_ns,
                ).where(API_KEYS.c.key_id == key_id)
            ).first()
        if row is None or not api_keys.secret_matches(secret, row.secret_hash):
            raise UnauthenticatedError(f"unknown API key {key_id}")
        if row.revoked_ns is not None:
            raise UnauthenticatedError(f"API key {key_id} was revoked")
        principal = Principal(key_id, Role(row.role), row.tenant, row.node)
        self._remember(token, principal)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (called when it is revoked)."""
        with self._lock:
            for token in [t for t, (_, p) in self._cache.items() if p.key_id == key_id]:
                del self._cache[token]

    def _cached(self, token: str) -> Principal | None:
        with self._lock:
            entry = self._cache.get(token)
            if entry is None:
                return None
            expires, principal = entry
            if expires < time.monotonic():
                del self._cache[token]
                return None
            self._cache.move_to_end(token)
            return principal

    def _remember(self, token: str, principal: Principal) -> None:
        with self._lock:
            self._cache[token] = (time.monotonic() + self._cache_seconds, principal)
            while len(self._cache) > AUTH_CACHE_ENTRIES_MAX:
                self._cache.popitem(last=False)
