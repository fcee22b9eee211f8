"""The blob store's files: content-addressed, written durably, under <data_dir>/blobs/.

Owns: the layout — `sha256/<first 2 hex>/<64 hex>` for stored blobs, `tmp/` for blobs being
written, `partial/<request id>` for results being downlinked — and the durable ways in: a blob
is written to a temporary file, fsync'd, renamed into place and its directory fsync'd, so a
crash leaves either no blob or the whole blob; a partial result grows by appends, each
fsync'd before it is acknowledged, and is renamed into place whole once its SHA-256 matched.
A stored blob is never rewritten: its name is its content.

Does not own: which blobs exist for the broker (the `blobs` table, store.py), who may read
them, or limits.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

# Bytes hashed or copied per read.
READ_CHUNK_BYTES = 1024 * 1024
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class BlobFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        for part in ("sha256", "tmp", "partial"):
            (root / part).mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)

    # -- stored blobs ------------------------------------------------------------------------

    def path(self, digest_hex: str) -> Path:
        return self.root / "sha256" / digest_hex[:2] / digest_hex

    def exists(self, digest_hex: str) -> bool:
        return self.path(digest_hex).is_file()

    def write(self, digest_hex: str, data: bytes) -> None:
        """Store `data` (whose SHA-256 is `digest_hex`) durably; a no-op if it is stored."""
        assert hashlib.sha256(data).hexdigest() == digest_hex
        target = self.path(digest_hex)
        if target.is_file() and target.stat().st_size == len(data):
            return
        temporary = self.root / "tmp" / f"{digest_hex}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._place(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    def _place(self, source: Path, target: Path) -> None:
        target.parent.mkdir(exist_ok=True, mode=DIRECTORY_MODE)
        os.replace(source, target)
        _fsync_directory(target.parent)

    def read(self, digest_hex: str, offset: int, max_bytes: int) -> tuple[bytes, int]:
        """Up to `max_bytes` from `offset`, and the blob's size."""
        with self.path(digest_hex).open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(min(offset, size))
            return handle.read(max_bytes), size

    def delete(self, digest_hex: str) -> None:
        self.path(digest_hex).unlink(missing_ok=True)

    # -- partial results -----------------------------------------------------------------------

    def partial_path(self, request_id: str) -> Path:
        return self.root / "partial" / request_id

    def partial_length(self, request_id: str) -> int:
        path = self.partial_path(request_id)
        return path.stat().st_size if path.is_file() else 0

    def append_partial(self, request_id: str, offset: int, data: bytes) -> int:
        """Write `data` at `offset` (at most the current length: the caller checked) and fsync;
        the new length."""
        path = self.partial_path(request_id)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        try:
            os.pwrite(descriptor, data, offset)
            os.fsync(descriptor)
            return os.fstat(descriptor).st_size
        finally:
            os.close(descriptor)

    def partial_sha256(self, request_id: str) -> bytes:
        digest = hashlib.sha256()
        with self.partial_path(request_id).open("rb") as handle:
            while chunk := handle.read(READ_CHUNK_BYTES):
                digest.update(chunk)
        return digest.digest()

    def adopt_partial(self, request_id: str, digest_hex: str) -> None:
        """Move a complete, checked partial result into the store under its digest."""
        source = self.partial_path(request_id)
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        self._place(source, self.path(digest_hex))

    def drop_partial(self, request_id: str) -> None:
        self.partial_path(request_id).unlink(missing_ok=True)
