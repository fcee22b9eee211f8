"""The broker's ticket key: the Ed25519 key every ticket is signed with.

Owns: `ticket.key` in the data directory — another key than the checkpoints' `broker.key`, so
a leak of one forges neither the other's tickets nor its checkpoints — created by `orbitq
init` and, for data directories made before node agents existed, on the broker's first start
(the same file format, mode 0600 and passphrase as broker.key: orbitq.services.identity);
and `TicketSigner`: the key with its name (the broker's origin, the tickets' issuer), its
4-byte key id (the tickets' kid) and its verifier key string, which agents pin at enrollment
and GetPublicKey publishes.

Does not own: the ticket format (orbitq.ledger.tickets) or what goes in a ticket (tickets.py).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orbitq.ledger.note import Signer
from orbitq.services.identity.signing_key import create_key_file, load_key_file


def load_or_create(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """The ticket key at `path`, created (0600) if the data directory has none yet."""
    if not path.exists():
        return create_key_file(path, passphrase)
    return load_key_file(path, passphrase)


class TicketSigner:
    """The ticket key with its name (the broker's origin: every ticket's issuer)."""

    def __init__(self, issuer: str, private_key: Ed25519PrivateKey) -> None:
        self.issuer = issuer
        self.private_key = private_key
        self._signer = Signer.from_private_key(issuer, private_key)
        self.public_key = private_key.public_key().public_bytes_raw()

    @property
    def key_id(self) -> bytes:
        """`orbitq.ledger.note.key_id(issuer, public key)`: the kid of every ticket."""
        return self._signer.key_id

    def verifier_key(self) -> str:
        """`<issuer>+<hex key id>+<base64(0x01 || public key)>`: what agents pin."""
        return self._signer.verifier_key()
