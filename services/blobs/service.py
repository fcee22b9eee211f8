"""`Blobs`: what the RequestService's blob calls do, and who may call them.

| method | operator | tenant key | node key |
| --- | --- | --- | --- |
| `push_workload`, `push_input` | for a named tenant | for its own tenant | no |
| `get` | any blob | its tenant's modules and inputs, its requests' results | no (FetchBlob) |

A blob the caller may not read is NOT_FOUND, like one that does not exist (digests leak
nothing). Sizes: a module at most PUSH_WORKLOAD_BYTES_MAX, an input PUSH_INPUT_BYTES_MAX, a
read GET_CHUNK_BYTES_MAX per call (0 means that much). A module is checked (modules.py) before
anything is stored.

Does not own: the files and rows (store.py), node agents' reads (orbitq.services.agents).
"""

from __future__ import annotations

from dataclasses import dataclass

from orbitq.services.auth import Principal
from orbitq.services.blobs import digests
from orbitq.services.blobs.modules import check_module
from orbitq.services.blobs.store import INPUT, WORKLOAD, BlobStore
from orbitq.services.errors import InvalidArgumentError, NotFoundError
from orbitq.services.identity.api_keys import Role
from orbitq.services.tenants import Tenants

MIB = 1024 * 1024
PUSH_WORKLOAD_BYTES_MAX = 8 * MIB
PUSH_INPUT_BYTES_MAX = 16 * MIB
GET_CHUNK_BYTES_MAX = 4 * MIB


@dataclass(frozen=True, slots=True)
class Pushed:
    digest: str  # "sha256:<hex>"
    size: int
    created: bool
    imports: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    data: bytes
    total_bytes: int


def chunk_size(max_bytes: int, limit: int, field: str = "max_bytes") -> int:
    """A read's size: `limit` for 0, else at most `limit`."""
    if not 0 <= max_bytes <= limit:
        raise InvalidArgumentError(
            f"{field} is {max_bytes:,}; at most {limit:,} a call (0 means {limit:,})"
        )
    return max_bytes or limit


def read_chunk(store: BlobStore, digest_hex: str, offset: int, max_bytes: int) -> Chunk:
    size = store.size(digest_hex)
    if size is None:
        raise NotFoundError(f"no blob {digests.of_hex(digest_hex)}")
    if offset > size:
        raise InvalidArgumentError(f"offset {offset:,} is beyond the blob's {size:,} bytes")
    data, total = store.read(digest_hex, offset, max_bytes)
    return Chunk(data, total)


class Blobs:
    def __init__(self, store: BlobStore, tenants: Tenants) -> None:
        self.store = store
        self._tenants = tenants

    def push_workload(self, principal: Principal, module: bytes, tenant: str) -> Pushed:
        owner = principal.tenant_scope(tenant, "push workloads for")
        self._tenants.require(owner)
        _check_size("module", module, PUSH_WORKLOAD_BYTES_MAX)
        imports = check_module(module)
        put = self.store.put(module, kind=WORKLOAD, tenant=owner, ref=owner)
        return Pushed(digests.of_hex(put.digest), put.size, put.created, imports)

    def push_input(self, principal: Principal, data: bytes, tenant: str) -> Pushed:
        owner = principal.tenant_scope(tenant, "push inputs for")
        self._tenants.require(owner)
        _check_size("data", data, PUSH_INPUT_BYTES_MAX)
        put = self.store.put(data, kind=INPUT, tenant=owner, ref=owner)
        return Pushed(digests.of_hex(put.digest), put.size, put.created)

    def get(self, principal: Principal, digest: str, offset: int, max_bytes: int) -> Chunk:
        principal.require_role(Role.OPERATOR, Role.TENANT, action="reading blobs")
        digest_hex = digests.parse(digest)
        size = chunk_size(max_bytes, GET_CHUNK_BYTES_MAX)
        if not principal.is_operator and not self.store.readable_by(
            digest_hex, principal.tenant_scope("", "read blobs of")
        ):
            raise NotFoundError(f"no blob {digest}")
        return read_chunk(self.store, digest_hex, offset, size)


def _check_size(field: str, data: bytes, limit: int) -> None:
    if not data:
        raise InvalidArgumentError(f"{field} is empty")
    if len(data) > limit:
        raise InvalidArgumentError(f"{field} is {len(data):,} bytes; at most {limit:,}")
