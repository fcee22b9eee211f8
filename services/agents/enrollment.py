"""EnrollNode: a node's agent registers its Ed25519 key with a one-time token.

Owns the rules, in order (each a status a person can act on):
1. the token is the credential (no API key): malformed, unknown, wrong secret, expired or
   replaced by a newer token → UNAUTHENTICATED; a token made for another node →
   PERMISSION_DENIED;
2. the node exists (NOT_FOUND); the public key is a 32-byte Ed25519 point, the fuel rate is in
   FUEL_PER_CORE_SECOND_MIN..MAX, the runtime 1..RUNTIME_CHARS_MAX printable characters
   (INVALID_ARGUMENT);
3. the token is bound to the key (the token row locked): the first use records the key; a
   retry with the same key while the token lives re-issues the credential (the agent may have
   crashed before storing it); another key → FAILED_PRECONDITION;
4. the key goes into the signed log (NodeKeyEnrolled, appended once) — only after step 3, so
   two agents racing with one token cannot both get a key into the log;
5. in one transaction under the constellation's lock (the scheduler's world is rebuilt: the
   node now takes work): the node's earlier API keys are revoked (its old credential stops
   working at once on this broker, on other replicas within the auth cache's seconds), a new
   node API key is issued, and the node's agent row is written (ground link from the token,
   key, key id, rate, runtime, the NodeKeyEnrolled entry; health reset).

Does not own: making tokens (tokens.py), the key's log entry (evidence.py), or transport.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from orbitq.ledger.note import key_id as note_key_id
from orbitq.ledger.store.writer import GroupCommitWriter
from orbitq.services.agents import tokens
from orbitq.services.agents.evidence import append_node_key
from orbitq.services.agents.tables import NODE_AGENTS, TOKENS
from orbitq.services.auth import Authenticator
from orbitq.services.constellation import Constellation, GroundLink, NodeRecord
from orbitq.services.constellation.tables import touch_nodes, writing
from orbitq.services.db.engine import write_transaction
from orbitq.services.db.models import RUNTIME_CHARS_MAX
from orbitq.services.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from orbitq.services.identity import api_keys
from orbitq.services.identity.api_keys import Role
from orbitq.services.identity.tables import API_KEYS

FUEL_PER_CORE_SECOND_MIN = 10**8
FUEL_PER_CORE_SECOND_MAX = 10**11
PUBLIC_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Enrolled:
    node: NodeRecord
    ground_link: GroundLink
    api_key: str  # the node's credential, shown once
    api_key_id: str
    key_entry_index: int


@dataclass(frozen=True, slots=True)
class EnrollRequest:
    node: str
    public_key: bytes
    token: str
    fuel_per_core_second: int
    runtime: str


def check_shape(request: EnrollRequest) -> None:
    if len(request.public_key) != PUBLIC_KEY_BYTES:
        raise InvalidArgumentError(
            f"public_key must be a raw Ed25519 key of {PUBLIC_KEY_BYTES} bytes,"
            f" got {len(request.public_key)}"
        )
    try:
        Ed25519PublicKey.from_public_bytes(request.public_key)
    except ValueError:
        raise InvalidArgumentError("public_key is not an Ed25519 public key") from None
    rate = request.fuel_per_core_second
    if not FUEL_PER_CORE_SECOND_MIN <= rate <= FUEL_PER_CORE_SECOND_MAX:
        raise InvalidArgumentError(
            f"fuel_per_core_second {rate:,} is out of range: {FUEL_PER_CORE_SECOND_MIN:,}.."
            f"{FUEL_PER_CORE_SECOND_MAX:,} (calibrate with `orbitq agent init`)"
        )
    runtime = request.runtime
    if not runtime or len(runtime) > RUNTIME_CHARS_MAX or not runtime.isprintable():
        raise InvalidArgumentError(
            f"runtime {runtime[:80]!r} must be 1..{RUNTIME_CHARS_MAX} printable characters"
            " (e.g. 'wasmtime 51.0.0')"
        )


class Enrollment:
    def __init__(
        self,
        engine: sa.Engine,
        constellation: Constellation,
        writer: GroupCommitWriter,
        authenticator: Authenticator,
        now_ns: Callable[[], int],
    ) -> None:
        self._engine = engine
        self._constellation = constellation
        self._writer = writer
        self._authenticator = authenticator
        self._now_ns = now_ns

    def enroll(self, request: EnrollRequest) -> Enrolled:
        """Enroll the node's key (see the module docstring)."""
        token_id, secret = self._parse(request.token)
        self._constellation.node(request.node)  # NotFoundError names it
        check_shape(request)
        ground_link = self._bind(token_id, secret, request)
        key_id = note_key_id(request.node, request.public_key)
        entry_index = append_node_key(
            self._writer,
            request.node,
            request.public_key,
            request.fuel_per_core_second,
            request.runtime,
        )
        issued, revoked = self._record(request, ground_link, key_id, entry_index)
        for old in revoked:
            self._authenticator.forget(old)
        return Enrolled(
            node=self._constellation.node(request.node),
            ground_link=ground_link,
            api_key=issued.token,
            api_key_id=issued.key_id,
            key_entry_index=entry_index,
        )

    @staticmethod
    def _parse(token: str) -> tuple[str, str]:
        parsed = tokens.parse(token)
        if parsed is None:
            raise UnauthenticatedError(
                "malformed enrollment token: expected oqe_<id>_<secret> as `orbitq node"
                " enroll` printed it"
            )
        return parsed

    def _bind(self, token_id: str, secret: str, request: EnrollRequest) -> GroundLink:
        """Check the token and bind it to the key (step 3); the token's ground link."""
        now_ns = self._now_ns()
        with write_transaction(self._engine) as connection:
            row = connection.execute(
                sa.select(TOKENS).where(TOKENS.c.token_id == token_id).with_for_update()
            ).first()
            if row is None or not tokens.secret_matches(secret, row.secret_hash):
                raise UnauthenticatedError(f"unknown enrollment token {token_id}")
            if row.replaced_ns is not None:
                raise UnauthenticatedError(
                    f"enrollment token {token_id} was replaced by a newer token for node {row.node}"
                )
            if row.expires_ns <= now_ns:
                raise UnauthenticatedError(
                    f"enrollment token {token_id} expired; make a new one with `orbitq node"
                    f" enroll {row.node}`"
                )
            if row.node != request.node:
                raise PermissionDeniedError(
                    f"enrollment token {token_id} is for node {row.node}, not {request.node}"
                )
            if row.used_public_key is None:
                connection.execute(
                    sa.update(TOKENS)
                    .where(TOKENS.c.token_id == token_id)
                    .values(used_public_key=request.public_key, used_ns=now_ns)
                )
            elif bytes(row.used_public_key) != request.public_key:
                raise FailedPreconditionError(
                    f"enrollment token {token_id} was used already, with another key: a token"
                    " enrolls one key (make a new token to enroll another)"
                )
            ground_link: GroundLink = "always" if row.ground_link == "always" else "contacts"
            return ground_link

    def _record(
        self, request: EnrollRequest, ground_link: GroundLink, key_id: bytes, entry_index: int
    ) -> tuple[api_keys.NewApiKey, list[str]]:
        """Step 5: (the new credential, the key ids revoked)."""
        now_ns = self._now_ns()
        issued = api_keys.generate()
        agent = {
            "public_key": request.public_key,
            "key_id": key_id,
            "ground_link": ground_link,
            "fuel_per_core_second": request.fuel_per_core_second,
            "runtime": request.runtime,
            "enrolled_ns": now_ns,
            "key_entry_index": entry_index,
            "api_key_id": issued.key_id,
            "last_heartbeat_ns": None,
            "missed_contacts": 0,
            "degraded_by_broker": False,
        }
        with writing(self._engine, world=True) as (connection, _):
            revoked = [
                str(key)
                for (key,) in connection.execute(
                    sa.select(API_KEYS.c.key_id)
                    .where(API_KEYS.c.role == Role.NODE.value)
                    .where(API_KEYS.c.node == request.node)
                    .where(API_KEYS.c.revoked_ns.is_(None))
                )
            ]
            if revoked:
                connection.execute(
                    sa.update(API_KEYS)
                    .where(API_KEYS.c.key_id.in_(revoked))
                    .values(revoked_ns=now_ns)
                )
            connection.execute(
                sa.insert(API_KEYS).values(
                    key_id=issued.key_id,
                    secret_hash=issued.secret_hash,
                    role=Role.NODE.value,
                    tenant=None,
                    node=request.node,
                    label=f"node agent ({request.runtime})",
                    created_ns=now_ns,
                )
            )
            updated = connection.execute(
                sa.update(NODE_AGENTS).where(NODE_AGENTS.c.node == request.node).values(agent)
            ).rowcount
            if not updated:
                connection.execute(sa.insert(NODE_AGENTS).values(node=request.node, **agent))
            touch_nodes(connection, [request.node])
        return issued, revoked
