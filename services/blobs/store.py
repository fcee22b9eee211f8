"""The blob store: files (files.py) and their rows (`blobs`, `blob_refs`), kept in step.

Owns: putting a blob with a reference to it (a tenant's workload or input, a request's
result), the store's limits (total bytes; bytes of one tenant's modules and inputs), reading,
who a blob is readable by (its refs' tenants), and deleting what no ref names any more — the
results of requests that ended more than the retention ago. Per digest one in-process lock
(striped) orders a put against a deletion of the same blob: a blob's file is written before
its row and deleted after it, so a row always has its file.

The files live on this broker's disk: replicas on one PostgreSQL each keep their own (a
result uploaded to one replica is readable there; see docs/agent.md).

Does not own: who may call what (service.py, orbitq.services.agents) or the checks of a
module (modules.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import SQLModel

from orbitq.services.blobs.digests import hex_of
from orbitq.services.blobs.files import BlobFiles
from orbitq.services.db import models  # noqa: F401  (registers the tables)
from orbitq.services.db.engine import driver_execute, driver_row, write_transaction
from orbitq.services.errors import ResourceExhaustedError

BLOBS: sa.Table = SQLModel.metadata.tables["blobs"]
REFS: sa.Table = SQLModel.metadata.tables["blob_refs"]
REQUESTS: sa.Table = SQLModel.metadata.tables["requests"]

WORKLOAD, INPUT, RESULT = "workload", "input", "result"
KINDS = (WORKLOAD, INPUT, RESULT)
LOCK_STRIPES = 64
# Blobs deleted per pass of the retention job (the next pass takes the rest).
DELETIONS_PER_PASS_MAX = 10_000
_REFERENCED_SIZE_SQL = (
    "SELECT blobs.size FROM blobs JOIN blob_refs ON blob_refs.digest = blobs.digest"
    " WHERE blobs.digest = ? AND blob_refs.tenant = ? AND blob_refs.kind = ? LIMIT 1"
)

# Storing a blob and its reference (`_insert`), and a blob's size.
_BLOB_SIZE_SQL = "SELECT size FROM blobs WHERE digest = ?"
_INSERT_BLOB_SQL = "INSERT INTO blobs (digest, size, created_ns) VALUES (?, ?, ?)"
_REF_SQL = "SELECT digest FROM blob_refs WHERE digest = ? AND kind = ? AND ref = ?"
_INSERT_REF_SQL = (
    "INSERT INTO blob_refs (digest, kind, ref, tenant, created_ns) VALUES (?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class Put:
    digest: str  # 64 hex digits
    size: int
    # False when this reference existed already (the same tenant pushed the same bytes).
    created: bool


@dataclass(frozen=True, slots=True)
class Limits:
    store_bytes_max: int
    tenant_bytes_max: int


class StripedLocks:
    """A fixed set of locks, one chosen per key: work on one key (a blob, a request) is
    ordered, work on different keys mostly is not, and the number of locks stays bounded."""

    def __init__(self, stripes: int = LOCK_STRIPES) -> None:
        self._locks = tuple(threading.Lock() for _ in range(stripes))

    def of(self, key_hex: str) -> threading.Lock:
        """The lock of a key that starts with hex digits (a digest, a request id)."""
        return self._locks[int(key_hex[:8], 16) % len(self._locks)]


def _ref_exists(connection: sa.Connection, digest: str, kind: str, ref: str) -> bool:
    found = connection.execute(
        sa.select(REFS.c.digest)
        .where(REFS.c.digest == digest)
        .where(REFS.c.kind == kind)
        .where(REFS.c.ref == ref)
    ).first()
    return found is not None


class BlobStore:
    def __init__(
        self, engine: sa.Engine, files: BlobFiles, limits: Limits, now_ns: Callable[[], int]
    ) -> None:
        self._engine = engine
        self.files = files
        self._limits = limits
        self._now_ns = now_ns
        self._locks = StripedLocks()

    def _lock(self, digest_hex: str) -> threading.Lock:
        return self._locks.of(digest_hex)

    # -- writes --------------------------------------------------------------------------------

    def put(self, data: bytes, *, kind: str, tenant: str, ref: str) -> Put:
        """Store `data` with a reference (kind, ref) readable by `tenant`, within the limits
        (RESOURCE_EXHAUSTED naming the limit)."""
        assert kind in (WORKLOAD, INPUT)
        digest = hex_of(data)
        with self._lock(digest):
            if not self._has_ref(digest, kind, ref):
                self._check_room(tenant, digest, len(data))
            self.files.write(digest, data)
            created = self._insert(digest, len(data), kind, tenant, ref)
        return Put(digest, len(data), created)

    def add_stored(self, digest_hex: str, size: int, *, kind: str, tenant: str, ref: str) -> bool:
        """Record a blob whose file is already in place (a result moved in from its partial
        file), with its reference; False when the reference existed."""
        with self._lock(digest_hex):
            assert self.files.exists(digest_hex)
            return self._insert(digest_hex, size, kind, tenant, ref)

    def _has_ref(self, digest: str, kind: str, ref: str) -> bool:
        with self._engine.connect() as connection:
            return _ref_exists(connection, digest, kind, ref)

    def _check_room(self, tenant: str, digest: str, size: int) -> None:
        if self.size(digest) is not None:
            return  # the bytes are stored already: a new reference costs no room
        used = self.used_bytes()
        if used + size > self._limits.store_bytes_max:
            raise ResourceExhaustedError(
                f"the broker's blob store is full: {used:,} of {self._limits.store_bytes_max:,}"
                f" bytes used, this blob needs {size:,}"
            )
        held = self.tenant_bytes(tenant)
        if held + size > self._limits.tenant_bytes_max:
            raise ResourceExhaustedError(
                f"tenant {tenant} holds {held:,} bytes of modules and inputs; with this blob"
                f" ({size:,}) it would pass its limit of {self._limits.tenant_bytes_max:,}"
            )

    def _insert(self, digest: str, size: int, kind: str, tenant: str, ref: str) -> bool:
        # Through the driver's cursor, statement by statement as SQLAlchemy sent them: every
        # result stored (OpenResult's, PutResultChunk's last) passes here.
        now_ns = self._now_ns()
        with write_transaction(self._engine) as connection:
            # PostgreSQL locks the blob's row (SQLite's write transaction holds the database).
            locking = " FOR UPDATE" if connection.dialect.name == "postgresql" else ""
            blob = driver_row(connection, _BLOB_SIZE_SQL + locking, (digest,))
            if blob is None:
                driver_execute(connection, _INSERT_BLOB_SQL, (digest, size, now_ns))
            else:
                stored = int(blob["size"])
                assert stored == size, f"blob {digest}: stored size {stored} != {size}"
            if driver_row(connection, _REF_SQL, (digest, kind, ref)) is not None:
                return False
            driver_execute(connection, _INSERT_REF_SQL, (digest, kind, ref, tenant, now_ns))
            return True

    def expire_results(self, ended_before_ns: int) -> int:
        """Forget the results of requests that ended before `ended_before_ns`, then delete the
        blobs no reference names; how many blobs were deleted."""
        ended = (
            sa.select(REQUESTS.c.id)
            .where(REQUESTS.c.ended_ns.is_not(None))
            .where(REQUESTS.c.ended_ns < ended_before_ns)
        )
        with write_transaction(self._engine) as connection:
            connection.execute(
                sa.delete(REFS).where(REFS.c.kind == RESULT).where(REFS.c.ref.in_(ended))
            )
        referenced = sa.select(REFS.c.digest).where(REFS.c.digest == BLOBS.c.digest)
        with self._engine.connect() as connection:
            orphans = [
                str(digest)
                for (digest,) in connection.execute(
                    sa.select(BLOBS.c.digest)
                    .where(~sa.exists(referenced))
                    .limit(DELETIONS_PER_PASS_MAX)
                )
            ]
        deleted = 0
        for digest in orphans:
            with self._lock(digest):
                with write_transaction(self._engine) as connection:
                    gone = connection.execute(
                        sa.delete(BLOBS)
                        .where(BLOBS.c.digest == digest)
                        .where(~sa.exists(referenced))
                    ).rowcount
                if gone:
                    self.files.delete(digest)
                    deleted += 1
        return deleted

    # -- reads ---------------------------------------------------------------------------------

    def size(self, digest_hex: str) -> int | None:
        # Through the driver's cursor: OpenResult and every ticket made ask.
        with self._engine.connect() as connection:
            found = driver_row(connection, _BLOB_SIZE_SQL, (digest_hex,))
        return int(found["size"]) if found is not None else None

    def referenced_size(self, digest_hex: str, *, tenant: str, kind: str) -> int | None:
        """The blob's size if `tenant` holds a reference of `kind` to it, else None."""
        # Through the driver's cursor: every Submit asks, and a statement built and run by
        # SQLAlchemy (with its BEGIN and ROLLBACK) cost about 0.6 ms of the GIL per call.
        with self._engine.connect() as connection:
            found = driver_row(connection, _REFERENCED_SIZE_SQL, (digest_hex, tenant, kind))
        return int(found["size"]) if found is not None else None

    def readable_by(self, digest_hex: str, tenant: str) -> bool:
        with self._engine.connect() as connection:
            found = connection.execute(
                sa.select(REFS.c.digest)
                .where(REFS.c.digest == digest_hex)
                .where(REFS.c.tenant == tenant)
                .limit(1)
            ).first()
        return found is not None

    def read(self, digest_hex: str, offset: int, max_bytes: int) -> tuple[bytes, int]:
        return self.files.read(digest_hex, offset, max_bytes)

    def used_bytes(self) -> int:
        with self._engine.connect() as connection:
            total = connection.execute(sa.select(sa.func.sum(BLOBS.c.size))).scalar()
        return int(total or 0)

    def tenant_bytes(self, tenant: str) -> int:
        """Bytes of the distinct modules and inputs `tenant` holds references to."""
        mine = (
            sa.select(REFS.c.digest)
            .where(REFS.c.tenant == tenant)
            .where(REFS.c.kind.in_((WORKLOAD, INPUT)))
        )
        with self._engine.connect() as connection:
            total = connection.execute(
                sa.select(sa.func.sum(BLOBS.c.size)).where(BLOBS.c.digest.in_(mine))
            ).scalar()
        return int(total or 0)
