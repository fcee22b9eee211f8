"""Tenants and their API keys: the broker's identity operations.

Owns: creating tenants (with their three ledger accounts, through the ledger writer so the
creations are signed log entries), listing them, issuing and revoking API keys, the naming
rules, and who may do each (checked here, first, against the caller's Principal):

| method | operator | tenant key | node key |
| --- | --- | --- | --- |
| `create` | yes | no | no |
| `list` | every tenant | its own tenant only | no |
| `issue_key`, role tenant | for any tenant | for its own tenant | no |
| `issue_key`, role operator or node | yes | no | no |
| `revoke_key` | any key | its own tenant's keys | no |

`get` and `ensure_accounts` are for in-process callers that have checked scope already.

Does not own: authentication of calls (orbitq.services.auth), the rows' shape
(orbitq.services.identity.tables) or transport.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import sqlalchemy as sa

from orbitq.ledger.model import Kind
from orbitq.ledger.store import AccountSpec, CreateAccounts
from orbitq.ledger.store.writer import GroupCommitWriter
from orbitq.services import pagination
from orbitq.services.auth import Authenticator, Principal
from orbitq.services.db.engine import write_transaction
from orbitq.services.db.models import DISPLAY_NAME_CHARS_MAX, LABEL_CHARS_MAX
from orbitq.services.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from orbitq.services.identity import api_keys
from orbitq.services.identity.api_keys import Role
from orbitq.services.identity.tables import (
    API_KEYS,
    TENANTS,
    ApiKeyRecord,
    TenantRecord,
    api_key_of,
    tenant_of,
)

TENANT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
NODE_ID_PATTERN = re.compile(r"^[0-9A-Za-z._-]{1,32}$")
# Tenants known to exist, remembered for the hot paths (Submit checks its tenant on every call).
# A tenant is never deleted, so a name once seen stays true; the bound only caps memory.
KNOWN_TENANTS_MAX = 4096


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKeyRecord
    token: str


def validate_tenant_name(name: str) -> str:
    if not TENANT_NAME_PATTERN.match(name):
        raise InvalidArgumentError(
            f"tenant name {name[:80]!r} is not valid: use 1-63 characters of a-z, 0-9 and '-',"
            " starting with a letter"
        )
    return name


class Tenants:
    def __init__(
        self,
        engine: sa.Engine,
        writer: GroupCommitWriter,
        authenticator: Authenticator,
        now_ns: Callable[[], int],
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._authenticator = authenticator
        self._now_ns = now_ns
        self._known: dict[str, None] = {}

    def create(self, principal: Principal, name: str, display_name: str) -> TenantRecord:
        principal.require_operator("creating a tenant")
        validate_tenant_name(name)
        if len(display_name) > DISPLAY_NAME_CHARS_MAX:
            raise InvalidArgumentError(
                f"display_name is {len(display_name)} characters; at most {DISPLAY_NAME_CHARS_MAX}"
            )
        tenant = TenantRecord(name, display_name or name, self._now_ns())
        exists = AlreadyExistsError(f"tenant {name!r} already exists")
        try:
            with write_transaction(self._engine) as connection:
                found = connection.execute(
                    sa.select(TENANTS.c.name).where(TENANTS.c.name == name)
                ).first()
                if found is not None:
                    raise exists
                connection.execute(
                    sa.insert(TENANTS).values(
                        name=tenant.name,
                        display_name=tenant.display_name,
                        created_ns=tenant.created_ns,
                    )
                )
        except sa.exc.IntegrityError:
            # Another replica inserted the name between the read and the insert.
            raise exists from None
        # Accounts are created idempotently per (tenant, kind): a crash between the two steps
        # is repaired by `ensure_accounts` on the next call that needs them.
        self.ensure_accounts(name)
        return tenant

    def ensure_accounts(self, tenant: str) -> None:
        specs = tuple(AccountSpec(kind, tenant=tenant) for kind in Kind)
        self._writer.apply(CreateAccounts(specs))

    def get(self, name: str) -> TenantRecord:
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(TENANTS).where(TENANTS.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no tenant named {name!r}")
        return tenant_of(row)

    def require(self, name: str) -> None:
        """NotFoundError unless tenant `name` exists (read once per name: tenants are never
        deleted)."""
        if name in self._known:
            return
        self.get(name)
        if len(self._known) >= KNOWN_TENANTS_MAX:
            self._known.pop(next(iter(self._known)))
        self._known[name] = None

    def list(
        self, principal: Principal, page_size: int, page_token: str
    ) -> tuple[list[TenantRecord], str]:
        principal.require_role(Role.OPERATOR, Role.TENANT, action="listing tenants")
        size = pagination.page_size(page_size)
        after = pagination.decode_token(page_token, "tenants", pagination.TEXT)
        query = sa.select(TENANTS).order_by(TENANTS.c.name).limit(size + 1)
        if not principal.is_operator:
            query = query.where(TENANTS.c.name == principal.tenant_scope("", "list"))
        if after is not None:
            query = query.where(TENANTS.c.name > str(after))
        with self._engine.connect() as connection:
            tenants = [tenant_of(row) for row in connection.execute(query)]
        next_token = ""
        if len(tenants) > size:
            tenants = tenants[:size]
            next_token = pagination.encode_token(tenants[-1].name, "tenants")
        return tenants, next_token

    def issue_key(
        self, principal: Principal, role: Role, tenant: str, node: str, label: str
    ) -> IssuedKey:
        if role is Role.TENANT:
            tenant = principal.tenant_scope(tenant, "issue keys for")
            node = ""
        else:
            principal.require_operator(f"issuing a key of role {role.value}")
        if len(label) > LABEL_CHARS_MAX:
            raise InvalidArgumentError(
                f"label is {len(label)} characters; at most {LABEL_CHARS_MAX}"
            )
        if role is Role.TENANT:
            self.get(tenant)
        elif role is Role.OPERATOR:
            if tenant or node:
                raise InvalidArgumentError("an operator key belongs to no tenant and no node")
        elif role is Role.NODE:
            if not NODE_ID_PATTERN.match(node):
                raise InvalidArgumentError(
                    "a node key needs the node id (1-32 characters of letters, digits, '._-')"
                )
            tenant = ""
        new_key = api_keys.generate()
        key = ApiKeyRecord(
            key_id=new_key.key_id,
            role=role,
            tenant=tenant or None,
            node=node or None,
            label=label,
            created_ns=self._now_ns(),
            revoked_ns=None,
        )
        with write_transaction(self._engine) as connection:
            connection.execute(
                sa.insert(API_KEYS).values(
                    key_id=key.key_id,
                    secret_hash=new_key.secret_hash,
                    role=key.role.value,
                    tenant=key.tenant,
                    node=key.node,
                    label=key.label,
                    created_ns=key.created_ns,
                )
            )
        return IssuedKey(key, new_key.token)

    def revoke_key(self, principal: Principal, key_id: str) -> ApiKeyRecord:
        principal.require_role(Role.OPERATOR, Role.TENANT, action="revoking an API key")
        if not key_id:
            raise InvalidArgumentError("key_id is required")
        with write_transaction(self._engine) as connection:
            row = connection.execute(
                sa.select(API_KEYS).where(API_KEYS.c.key_id == key_id).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"no API key with id {key_id[:40]!r}")
            key = api_key_of(row)
            if not principal.acts_for(key.tenant):
                raise PermissionDeniedError("a tenant key can revoke only its own tenant's keys")
            if key.revoked_ns is None:
                revoked_ns = self._now_ns()
                connection.execute(
                    sa.update(API_KEYS)
                    .where(API_KEYS.c.key_id == key_id)
                    .values(revoked_ns=revoked_ns)
                )
                key = replace(key, revoked_ns=revoked_ns)
        self._authenticator.forget(key_id)
        return key
