"""API keys: random bearer secrets, stored only as hashes, each with one role.

Owns: the key format `oq_<key id>_<secret>` (both lowercase base32), generating keys, hashing
the secret, and parsing a presented key. The key id is public (safe to log and to name in
RevokeApiKey); the secret is 256 random bits.

Why SHA-256 and not a slow password hash: a slow hash protects low-entropy secrets people
choose. These secrets are 256 uniformly random bits, so brute force is hopeless either way, and a
fast hash keeps authentication off the hot path of every RPC.

Does not own: storage or roles' meaning (orbitq.services.auth).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "oq"
_KEY_ID_BYTES = 10
_SECRET_BYTES = 32
_KEY_PATTERN = re.compile(r"^oq_([a-z2-7]{16})_([a-z2-7]{52})$")
# Longer presented keys are rejected before any parsing.
PRESENTED_KEY_CHARS_MAX = 128


class Role(StrEnum):
    OPERATOR = "operator"
    TENANT = "tenant"
    NODE = "node"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key_id: str
    secret_hash: bytes
    # The whole key, to show exactly once.
    token: str


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def generate() -> NewApiKey:
    key_id = _b32(secrets.token_bytes(_KEY_ID_BYTES))
    secret = _b32(secrets.token_bytes(_SECRET_BYTES))
    return NewApiKey(key_id, hash_secret(secret), f"{KEY_PREFIX}_{key_id}_{secret}")


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def parse(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    if len(token) > PRESENTED_KEY_CHARS_MAX:
        return None
    match = _KEY_PATTERN.match(token)
    if match is None:
        return None
    return match.group(1), match.group(2)


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
