"""Enrollment tokens: one-time credentials with which a node's agent enrolls.

Owns: the format `oqe_<token id>_<secret>` (both lower-case base32; the id is public, the
secret 256 random bits stored only as its SHA-256, as API keys are), the life of a token
(TTL_SECONDS_MIN..TTL_SECONDS_MAX, TTL_SECONDS_DEFAULT when 0 is asked), and making one: a new
token for a node replaces the node's earlier ones in the same transaction.

Does not own: enrolling with a token (enrollment.py) or who may make one (service.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from orbitq.services.agents.tables import TOKENS
from orbitq.services.clock import NANOS_PER_SECOND
from orbitq.services.db.engine import write_transaction
from orbitq.services.errors import InvalidArgumentError

TOKEN_PREFIX = "oqe"  # noqa: S105 (a prefix, not a secret)
TTL_SECONDS_MIN = 60
TTL_SECONDS_MAX = 86_400
TTL_SECONDS_DEFAULT = 3_600
_TOKEN_ID_BYTES = 10
_SECRET_BYTES = 32
_TOKEN = re.compile(r"^oqe_([a-z2-7]{16})_([a-z2-7]{52})$")
# Longer presented tokens are refused before any parsing.
PRESENTED_TOKEN_CHARS_MAX = 128


@dataclass(frozen=True, slots=True)
class NewToken:
    token: str  # shown once
    expires_ns: int


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def parse(token: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed token, else None."""
    if len(token) > PRESENTED_TOKEN_CHARS_MAX:
        return None
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def ttl_seconds(asked: int) -> int:
    if asked == 0:
        return TTL_SECONDS_DEFAULT
    if not TTL_SECONDS_MIN <= asked <= TTL_SECONDS_MAX:
        raise InvalidArgumentError(
            f"ttl_seconds {asked:,} is out of range: {TTL_SECONDS_MIN}..{TTL_SECONDS_MAX:,}"
            f" (0 means {TTL_SECONDS_DEFAULT:,})"
        )
    return asked


def create(engine: sa.Engine, node: str, ground_link: str, ttl: int, now_ns: int) -> NewToken:
    """A new token for `node` (which exists); the node's earlier tokens stop working."""
    token_id = _b32(secrets.token_bytes(_TOKEN_ID_BYTES))
    secret = _b32(secrets.token_bytes(_SECRET_BYTES))
    expires_ns = now_ns + ttl * NANOS_PER_SECOND
    with write_transaction(engine) as connection:
        connection.execute(
            sa.update(TOKENS)
            .where(TOKENS.c.node == node)
            .where(TOKENS.c.replaced_ns.is_(None))
            .values(replaced_ns=now_ns)
        )
        connection.execute(
            sa.insert(TOKENS).values(
                token_id=token_id,
                node=node,
                secret_hash=hash_secret(secret),
                ground_link=ground_link,
                created_ns=now_ns,
                expires_ns=expires_ns,
            )
        )
    return NewToken(f"{TOKEN_PREFIX}_{token_id}_{secret}", expires_ns)
