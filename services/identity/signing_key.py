"""The broker's Ed25519 signing key, kept in a file only its owner can read.

Owns: creating the key file (PKCS#8 PEM, mode 0600, created exclusively so an existing key is
never overwritten), optional passphrase encryption, and loading it back — refusing a file that
group or others can read, as ssh does, because a leaked key lets anyone forge checkpoints.

Does not own: what the key signs (orbitq.ledger.checkpoint, tickets).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_FILE_MODE = 0o600


class SigningKeyError(Exception):
    """The key file is missing, unsafe, or cannot be decrypted."""


def create_key_file(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Generate a key and write it to `path` (which must not exist) with mode 0600."""
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise SigningKeyError(
            f"{path} already exists; refusing to overwrite a signing key"
        ) from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    # The umask may have narrowed the mode further, never widened it; make it exact.
    os.chmod(path, KEY_FILE_MODE)
    return key


def load_key_file(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SigningKeyError(f"no signing key at {path}: run `orbitq init` first") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`"
        )
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        if passphrase is None:
            raise SigningKeyError(
                f"{path} is encrypted: give its passphrase (ORBITQ_KEY_PASSPHRASE or "
                "--passphrase-file)"
            ) from None
        raise SigningKeyError(f"{path} is not encrypted, but a passphrase was given") from None
    except ValueError:
        raise SigningKeyError(f"{path}: wrong passphrase or not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} does not hold an Ed25519 key")
    return key
