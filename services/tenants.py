"""Tenants and their API keys: the broker's identity operations.

Owns: creating tenants (with their three ledger accounts, through the ledger writer so the
creations are signed log entries), listing them, issuing and revoking API keys, and the naming
rules. Authorisation is checked here against the caller's Principal.

Does not own: authentication of calls (orbitq.services.auth) or transport.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from orbitq.ledger.model import Kind
from orbitq.ledger.store import AccountSpec, CreateAccounts
from orbitq.ledger.store.writer import GroupCommitWriter
from orbitq.services import pagination
from orbitq.services.auth import Authenticator, Principal
from orbitq.services.db.engine import write_session
from orbitq.services.db.models import (
    DISPLAY_NAME_CHARS_MAX,
    LABEL_CHARS_MAX,
    ApiKeyRow,
    TenantRow,
)
from orbitq.services.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from orbitq.services.identity import api_keys
from orbitq.services.identity.api_keys import Role

TENANT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
NODE_ID_PATTERN = re.compile(r"^[0-9A-Za-z._-]{1,32}$")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    row: ApiKeyRow
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

    def create(self, principal: Principal, name: str, display_name: str) -> TenantRow:
        principal.require_operator("creating a tenant")
        validate_tenant_name(name)
        if len(display_name) > DISPLAY_NAME_CHARS_MAX:
            raise InvalidArgumentError(
                f"display_name is {len(display_name)} characters; at most {DISPLAY_NAME_CHARS_MAX}"
            )
        row = TenantRow(name=name, display_name=display_name or name, created_ns=self._now_ns())
        with write_session(self._engine) as session:
            if session.get(TenantRow, name) is not None:
                raise AlreadyExistsError(f"tenant {name!r} already exists")
            session.add(row)
            try:
                session.commit()
            except sa.exc.IntegrityError:
                raise AlreadyExistsError(f"tenant {name!r} already exists") from None
            session.refresh(row)
        # Accounts are created idempotently per (tenant, kind): a crash between the two steps
        # is repaired by `ensure_accounts` on the next call that needs them.
        self.ensure_accounts(name)
        return row

    def ensure_accounts(self, tenant: str) -> None:
        specs = tuple(AccountSpec(kind, tenant=tenant) for kind in Kind)
        self._writer.apply(CreateAccounts(specs))

    def get(self, name: str) -> TenantRow:
        with Session(self._engine) as session:
            row = session.get(TenantRow, name)
        if row is None:
            raise NotFoundError(f"no tenant named {name!r}")
        return row

    def list(
        self, principal: Principal, page_size: int, page_token: str
    ) -> tuple[list[TenantRow], str]:
        size = pagination.page_size(page_size)
        after = pagination.decode_token(page_token, "tenants")
        query = select(TenantRow).order_by(TenantRow.name).limit(size + 1)
        if principal.role is Role.TENANT:
            query = query.where(TenantRow.name == principal.tenant)
        elif not principal.is_operator:
            raise PermissionDeniedError("listing tenants needs an operator or tenant key")
        if after is not None:
            query = query.where(TenantRow.name > str(after))
        with Session(self._engine) as session:
            rows = list(session.exec(query).all())
        next_token = ""
        if len(rows) > size:
            rows = rows[:size]
            next_token = pagination.encode_token(rows[-1].name, "tenants")
        return rows, next_token

    def issue_key(
        self, principal: Principal, role: Role, tenant: str, node: str, label: str
    ) -> IssuedKey:
        if len(label) > LABEL_CHARS_MAX:
            raise InvalidArgumentError(
                f"label is {len(label)} characters; at most {LABEL_CHARS_MAX}"
            )
        if role is Role.TENANT:
            tenant = principal.tenant_scope(tenant, "issue keys for")
            self.get(tenant)
            node = ""
        elif role is Role.OPERATOR:
            principal.require_operator("issuing an operator key")
            if tenant or node:
                raise InvalidArgumentError("an operator key belongs to no tenant and no node")
        elif role is Role.NODE:
            principal.require_operator("issuing a node key")
            if not NODE_ID_PATTERN.match(node):
                raise InvalidArgumentError(
                    "a node key needs the node id (1-32 characters of letters, digits, '._-')"
                )
            tenant = ""
        new_key = api_keys.generate()
        row = ApiKeyRow(
            key_id=new_key.key_id,
            secret_hash=new_key.secret_hash,
            role=role.value,
            tenant=tenant or None,
            node=node or None,
            label=label,
            created_ns=self._now_ns(),
        )
        with write_session(self._engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
        return IssuedKey(row, new_key.token)

    def create_operator_key(self, label: str) -> IssuedKey:
        """The first operator key, made by `orbitq init` (no caller to authorise)."""
        bootstrap = Principal(key_id="init", role=Role.OPERATOR)
        return self.issue_key(bootstrap, Role.OPERATOR, "", "", label)

    def revoke_key(self, principal: Principal, key_id: str) -> ApiKeyRow:
        with write_session(self._engine) as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"no API key with id {key_id[:40]!r}")
            if not principal.is_operator and not (
                principal.role is Role.TENANT and row.tenant == principal.tenant
            ):
                raise PermissionDeniedError("a tenant key can revoke only its own tenant's keys")
            if row.revoked_ns is None:
                row.revoked_ns = self._now_ns()
                session.add(row)
                session.commit()
                session.refresh(row)
        self._authenticator.forget(key_id)
        return row
