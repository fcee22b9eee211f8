"""Resumable result uploads: a node agent downlinks a request's result in chunks, across as
many contacts as it takes, and a restart of either side loses nothing.

Owns the rules (CFDP's model on our transport; docs/agent.md says why not CFDP itself):
- `open(request, size, sha256)` says where to continue: 0 for a new upload, the partial file's
  length after a gap or a restart, `size` when the whole result is stored already (also when
  the same bytes are in the store for another reason). Opening again with another size or
  digest restarts an unfinished upload; a finished one cannot change (FAILED_PRECONDITION);
- `put(request, offset, data)` is idempotent: bytes at or below the stored length are already
  there (a retry is a no-op); an offset past it is FAILED_PRECONDITION naming where to
  continue; bytes past the declared size are INVALID_ARGUMENT. Each chunk is fsync'd before
  it is acknowledged;
- at the declared size the SHA-256 is checked: a match moves the file into the
  content-addressed store (readable by the request's tenant, kept until the retention job
  expires it); a mismatch deletes the partial file and the upload restarts at 0.
Per request one in-process lock (striped) orders concurrent calls.

Does not own: who may upload (orbitq.services.agents checks the node and the request) or
limits of size beyond the declared one (the caller checks the ticket's output limit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import SQLModel

from orbitq.services.blobs.store import RESULT, BlobStore, StripedLocks
from orbitq.services.db.engine import driver_execute, driver_row, write_transaction
from orbitq.services.errors import FailedPreconditionError, InvalidArgumentError

UPLOADS: sa.Table = SQLModel.metadata.tables["result_uploads"]
CHUNK_BYTES_MAX = 1024 * 1024
# Uploads forgotten per pass of the retention job (the next pass takes the rest).
EXPIRED_PER_PASS_MAX = 10_000
# The hot path's statements (through the driver's cursor; `?` placeholders).
_UPLOAD_SQL = "SELECT * FROM result_uploads WHERE request_id = ?"
_INSERT_UPLOAD_SQL = (
    "INSERT INTO result_uploads (node, size, sha256, opened_ns, completed_ns, request_id)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_REPLACE_UPLOAD_SQL = (
    "UPDATE result_uploads SET node = ?, size = ?, sha256 = ?, opened_ns = ?, completed_ns = ?"
    " WHERE request_id = ?"
)
_FINISH_UPLOAD_SQL = "UPDATE result_uploads SET completed_ns = ? WHERE request_id = ?"


@dataclass(frozen=True, slots=True)
class Upload:
    request_id: str
    size: int
    sha256: bytes
    completed: bool


class ResultUploads:
    def __init__(self, engine: sa.Engine, store: BlobStore, now_ns: Callable[[], int]) -> None:
        self._engine = engine
        self._store = store
        self._files = store.files
        self._now_ns = now_ns
        self._locks = StripedLocks()

    def _lock(self, request_id: str) -> threading.Lock:
        return self._locks.of(request_id)

    def get(self, request_id: str) -> Upload | None:
        # Through the driver's cursor: every OpenResult and PutResultChunk asks, and the
        # statement built and run by SQLAlchemy cost more of the GIL than SQLite's work.
        with self._engine.connect() as connection:
            row = driver_row(connection, _UPLOAD_SQL, (request_id,))
        if row is None:
            return None
        return Upload(
            row["request_id"],
            int(row["size"]),
            bytes(row["sha256"]),
            row["completed_ns"] is not None,
        )

    def open(self, request_id: str, node: str, tenant: str, size: int, sha256: bytes) -> int:
        """Where the upload of this result continues (see the module docstring)."""
        digest_hex = sha256.hex()
        with self._lock(request_id):
            upload = self.get(request_id)
            if upload is not None and upload.completed:
                if (upload.size, upload.sha256) != (size, sha256):
                    raise FailedPreconditionError(
                        f"request {request_id} already has its result stored (sha256:"
                        f"{upload.sha256.hex()}, {upload.size:,} bytes); it cannot change"
                    )
                return size
            here = self._store.size(digest_hex) == size and self._files.exists(digest_hex)
            if upload is None or (upload.size, upload.sha256) != (size, sha256):
                self._files.drop_partial(request_id)
                if here:
                    # The bytes are in the store already: the reference first, then the
                    # upload recorded complete at once (a crash between leaves a reference
                    # that the next open finds and keeps).
                    self._store.add_stored(
                        digest_hex, size, kind=RESULT, tenant=tenant, ref=request_id
                    )
                    self._start(
                        request_id, node, size, sha256, replace=upload is not None, done=True
                    )
                    return size
                self._start(request_id, node, size, sha256, replace=upload is not None)
            if here:
                # The bytes are in the store already: nothing needs to come down.
                self._store.add_stored(digest_hex, size, kind=RESULT, tenant=tenant, ref=request_id)
                self._finish(request_id)
                self._files.drop_partial(request_id)
                return size
            stored = self._files.partial_length(request_id)
            if stored > size:
                self._files.drop_partial(request_id)
                return 0
            if size == 0:  # an empty result: nothing comes down, it is complete at once
                self._files.append_partial(request_id, 0, b"")
                upload = Upload(request_id, size, sha256, completed=False)
                return self._complete(upload, tenant)
            return stored

    def put(self, request_id: str, tenant: str, offset: int, data: bytes) -> tuple[int, bool]:
        """Store a chunk; (where to continue, whether the whole result is stored)."""
        if len(data) > CHUNK_BYTES_MAX:
            raise InvalidArgumentError(
                f"data is {len(data):,} bytes; at most {CHUNK_BYTES_MAX:,} per chunk"
            )
        with self._lock(request_id):
            upload = self.get(request_id)
            if upload is None:
                raise FailedPreconditionError(
                    f"no upload of request {request_id}'s result is open: call OpenResult first"
                )
            if upload.completed:
                return upload.size, True
            stored = self._files.partial_length(request_id)
            if offset > stored:
                raise FailedPreconditionError(
                    f"offset {offset:,} is past what is stored of request {request_id}'s"
                    f" result: continue at next_offset {stored:,}"
                )
            if offset + len(data) > upload.size:
                raise InvalidArgumentError(
                    f"the chunk ends at {offset + len(data):,}, past the result's declared"
                    f" size {upload.size:,}"
                )
            if offset + len(data) > stored:
                stored = self._files.append_partial(request_id, stored, data[stored - offset :])
            if stored < upload.size:
                return stored, False
            return self._complete(upload, tenant), True

    def _complete(self, upload: Upload, tenant: str) -> int:
        found = self._files.partial_sha256(upload.request_id)
        if found != upload.sha256:
            self._files.drop_partial(upload.request_id)
            raise FailedPreconditionError(
                f"request {upload.request_id}'s result has SHA-256 {found.hex()}, not the"
                f" declared {upload.sha256.hex()}: the upload restarts at offset 0"
            )
        digest_hex = upload.sha256.hex()
        self._files.adopt_partial(upload.request_id, digest_hex)
        self._store.add_stored(
            digest_hex, upload.size, kind=RESULT, tenant=tenant, ref=upload.request_id
        )
        self._finish(upload.request_id)
        return upload.size

    def _start(
        self,
        request_id: str,
        node: str,
        size: int,
        sha256: bytes,
        *,
        replace: bool,
        done: bool = False,
    ) -> None:
        now_ns = self._now_ns()
        # One simple statement, through the driver's cursor (as `get`).
        params = (node, size, sha256, now_ns, now_ns if done else None, request_id)
        with write_transaction(self._engine) as connection:
            driver_execute(
                connection, _REPLACE_UPLOAD_SQL if replace else _INSERT_UPLOAD_SQL, params
            )

    def _finish(self, request_id: str) -> None:
        with write_transaction(self._engine) as connection:
            driver_execute(connection, _FINISH_UPLOAD_SQL, (self._now_ns(), request_id))

    def expire(self, ended_before_ns: int) -> int:
        """Forget the uploads (and partial files) of requests that ended before
        `ended_before_ns`; how many."""
        requests = SQLModel.metadata.tables["requests"]
        ended = (
            sa.select(requests.c.id)
            .where(requests.c.ended_ns.is_not(None))
            .where(requests.c.ended_ns < ended_before_ns)
        )
        with self._engine.connect() as connection:
            gone = [
                str(request_id)
                for (request_id,) in connection.execute(
                    sa.select(UPLOADS.c.request_id)
                    .where(UPLOADS.c.request_id.in_(ended))
                    .limit(EXPIRED_PER_PASS_MAX)
                )
            ]
        for request_id in gone:
            with self._lock(request_id):
                with write_transaction(self._engine) as connection:
                    connection.execute(sa.delete(UPLOADS).where(UPLOADS.c.request_id == request_id))
                self._files.drop_partial(request_id)
        return len(gone)

    def stored_result(self, request_id: str) -> Upload | None:
        """The request's result, if its upload is complete."""
        upload = self.get(request_id)
        return upload if upload is not None and upload.completed else None
