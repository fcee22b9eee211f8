"""The agent's data directory (0700) and its files.

    node.key     the node's Ed25519 private key, 32 raw bytes (0600)
    agent.toml   node, broker target, TLS CA file, the pinned ticket key and issuer, the
                 ground link, the fuel rate and runtime enrolled (written by `agent init`)
    credential   the node's API key (0600)
    agent.db     the local store (orbitq.clients.agent.store)
    blobs/       modules and inputs by digest (`<hex>`, and `<hex>.partial` while arriving)
    runs/        one directory per request: `<request id>/<attempt>/` (in/, out/, stdout,
                 stderr) and `<request id>/result` (the result blob)
    modules/     compiled modules (native code this agent compiled itself)

Owns: the layout, writing secrets with mode 0600 (atomically: a temporary file renamed), and
refusing a directory others can read. Does not own: what the store holds.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from orbitq.clients.agent.errors import DataDirError

CONFIG_BYTES_MAX = 64 * 1024
GROUND_LINKS = ("contacts", "always")


@dataclass(frozen=True)
class AgentConfig:
    """agent.toml: what `orbitq agent init` learned and `orbitq agent run` needs."""

    node: str
    target: str
    #: The broker's ticket key, as a verifier key string (<name>+<hex id>+<base64>).
    ticket_verifier_key: str
    #: The `iss` every ticket must carry.
    issuer: str
    #: "contacts": talk only inside contact windows; "always": a ground stand-in.
    ground_link: str
    fuel_per_core_second: int
    runtime: str
    api_key_id: str = ""
    #: PEM file of the CA of the broker's certificate ("" = plaintext).
    tls_ca: str = ""


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    key_path = property(lambda self: self.path / "node.key")
    config_path = property(lambda self: self.path / "agent.toml")
    credential_path = property(lambda self: self.path / "credential")
    db_path = property(lambda self: self.path / "agent.db")
    blobs = property(lambda self: self.path / "blobs")
    runs = property(lambda self: self.path / "runs")
    modules = property(lambda self: self.path / "modules")

    def create(self) -> None:
        """Make the directory (0700) and its subdirectories; tighten an existing one."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        for sub in (self.blobs, self.runs, self.modules):
            sub.mkdir(mode=0o700, exist_ok=True)

    def check(self) -> None:
        """DataDirError unless the directory and its secrets are the owner's alone."""
        if not self.config_path.exists():
            raise DataDirError(f"{self.path} has no agent.toml: run `orbitq agent init` first")
        for path, mode in (
            (self.path, 0o700),
            (self.key_path, 0o600),
            (self.credential_path, 0o600),
        ):
            try:
                actual = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                raise DataDirError(f"{path} is missing: run `orbitq agent init` again") from None
            if actual & 0o077:
                raise DataDirError(f"{path} has mode {actual:o}; it must be {mode:o}")
        for sub in (self.blobs, self.runs, self.modules):
            sub.mkdir(mode=0o700, exist_ok=True)

    # --- the node key ----------------------------------------------------------------------

    def write_key(self, key: Ed25519PrivateKey) -> None:
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        write_secret(self.key_path, raw)

    def key(self) -> Ed25519PrivateKey:
        raw = self.key_path.read_bytes()
        if len(raw) != 32:
            raise DataDirError(f"{self.key_path} is not a raw 32-byte Ed25519 key")
        return Ed25519PrivateKey.from_private_bytes(raw)

    # --- the credential and the configuration ----------------------------------------------

    def write_credential(self, api_key: str) -> None:
        write_secret(self.credential_path, api_key.encode())

    def credential(self) -> str:
        return str(self.credential_path.read_text()).strip()

    def write_config(self, config: AgentConfig) -> None:
        assert config.ground_link in GROUND_LINKS
        # JSON strings are TOML basic strings: the same escapes.
        lines = [f"{key} = {json.dumps(value)}" for key, value in asdict(config).items()]
        write_secret(self.config_path, ("\n".join(lines) + "\n").encode(), mode=0o600)

    def config(self) -> AgentConfig:
        text = self.config_path.read_bytes()[:CONFIG_BYTES_MAX].decode()
        try:
            data = tomllib.loads(text)
            known = {f.name for f in fields(AgentConfig)}
            config = AgentConfig(**{k: v for k, v in data.items() if k in known})
        except (tomllib.TOMLDecodeError, TypeError) as error:
            raise DataDirError(f"{self.config_path}: {error}") from None
        if config.ground_link not in GROUND_LINKS:
            raise DataDirError(f"{self.config_path}: ground_link must be one of {GROUND_LINKS}")
        return config


def write_secret(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write `data` to `path` with `mode`, atomically and durably."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
