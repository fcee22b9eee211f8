"""The agent's blob cache: workload modules and inputs, by SHA-256, fetched from the broker in
chunks (FetchBlob), resumable across contacts and restarts, checked against the ticket's digest
when the last byte arrives.

Owns: the files `blobs/<hex>` (complete, verified) and `blobs/<hex>.partial` (arriving), their
rows in the store, the size limits, and forgetting blobs no live ticket names.

Does not own: which tickets need which blobs (orbitq.clients.agent.agent), or the refusal a
bad blob causes (BLOB_UNAVAILABLE, reported by the loop).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from orbitq.clients.agent.link import BrokerLink
from orbitq.clients.agent.store import AgentStore
from orbitq.v1 import agent_pb2

FETCH_CHUNK_BYTES = 1024 * 1024  # FetchBlob's largest answer
# Modules are at most 8 MiB and inputs 16 MiB (the broker's limits): nothing larger comes up.
BLOB_BYTES_MAX = 16 * 1024 * 1024


class BlobRefusedError(ValueError):
    """The broker's blob does not match what the ticket names; the message says how."""


def digest_name(sha256: bytes) -> str:
    return f"sha256:{sha256.hex()}"


class BlobCache:
    def __init__(self, directory: Path, store: AgentStore) -> None:
        self.directory = directory
        self._store = store

    def path(self, sha256: bytes) -> Path:
        return self.directory / sha256.hex()

    def has(self, sha256: bytes) -> bool:
        row = self._store.blob(digest_name(sha256))
        return row is not None and row[2] and self.path(sha256).exists()

    def fetch(self, link: BrokerLink, sha256: bytes, budget_bytes: int) -> int:
        """Fetch what is missing of one blob, at most `budget_bytes` in this call; returns
        the bytes received. BlobRefusedError when it is too large or does not match its digest (the
        partial file is deleted: the next try starts over); LinkDownError and broker errors pass."""
        name = digest_name(sha256)
        partial = self.path(sha256).with_suffix(".partial")
        received = partial.stat().st_size if partial.exists() else 0
        got = 0
        while got < budget_bytes:
            response = link.fetch_blob(
                agent_pb2.FetchBlobRequest(
                    digest=name, offset=received, max_bytes=FETCH_CHUNK_BYTES
                )
            )
            total = response.total_bytes
            if total > BLOB_BYTES_MAX:
                raise BlobRefusedError(f"{name} is {total} bytes, over {BLOB_BYTES_MAX}")
            if received + len(response.data) > total or (not response.data and received < total):
                partial.unlink(missing_ok=True)
                raise BlobRefusedError(f"{name}: the broker sent bytes beyond its size {total}")
            _append(partial, response.data)
            received += len(response.data)
            got += len(response.data)
            self._store.record_blob(name, total, received, verified=False)
            if received == total:
                self._verify(partial, sha256)
                return got
        return got

    def _verify(self, partial: Path, sha256: bytes) -> None:
        name = digest_name(sha256)
        hasher = hashlib.sha256()
        with partial.open("rb") as file:
            while block := file.read(FETCH_CHUNK_BYTES):
                hasher.update(block)
        if hasher.digest() != sha256:
            partial.unlink(missing_ok=True)
            self._store.forget_blob(name)
            raise BlobRefusedError(f"{name}: the bytes fetched have SHA-256 {hasher.hexdigest()}")
        os.replace(partial, self.path(sha256))
        size = self.path(sha256).stat().st_size
        self._store.record_blob(name, size, size, verified=True)

    def forget_all_but(self, live: set[bytes]) -> int:
        """Delete every blob no live ticket names; returns how many went."""
        gone = 0
        for name in self._store.blobs():
            sha256 = bytes.fromhex(name.removeprefix("sha256:"))
            if sha256 in live:
                continue
            self.path(sha256).unlink(missing_ok=True)
            self.path(sha256).with_suffix(".partial").unlink(missing_ok=True)
            self._store.forget_blob(name)
            gone += 1
        return gone


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
