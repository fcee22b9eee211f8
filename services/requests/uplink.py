"""What a request sends up: its workload module and its input, checked at Submit.

Owns the rules (docs/agent.md): `workload` is the content address of a module the tenant
pushed ("sha256:<hex>", NOT_FOUND if the tenant has no such module) — in settlement "plan"
other opaque strings are still accepted (nothing runs), in "receipts" they are
INVALID_ARGUMENT; `input`, when given, is the content address of an input the tenant pushed
(NOT_FOUND otherwise) of at most `input_mb` megabytes (INVALID_ARGUMENT naming both sizes).

Does not own: the blobs (orbitq.services.blobs, reached through `BlobLookup`) or the cost of
the uplink (the scheduler's cost model counts input_mb; the ticket carries the seconds).
"""

from __future__ import annotations

from typing import Protocol

from orbitq.services.blobs import digests
from orbitq.services.errors import InvalidArgumentError, NotFoundError
from orbitq.services.requests.model import BYTES_PER_MB, RequestSpec


class BlobLookup(Protocol):
    def referenced_size(self, digest_hex: str, *, tenant: str, kind: str) -> int | None:
        """The blob's size if `tenant` holds a reference of `kind` to it, else None."""
        ...


def check_uplink(
    spec: RequestSpec, tenant: str, blobs: BlobLookup | None, *, modules_required: bool
) -> None:
    """Check the spec's workload and input against the tenant's blobs (see the module)."""
    if digests.is_digest(spec.workload):
        if blobs is None or (
            blobs.referenced_size(digests.parse(spec.workload), tenant=tenant, kind="workload")
            is None
        ):
            raise NotFoundError(
                f"workload {spec.workload}: tenant {tenant} has pushed no such module (push it"
                " with `orbitq workload push FILE.wasm`)"
            )
    elif modules_required:
        raise InvalidArgumentError(
            f"workload {spec.workload[:80]!r} is not a module's content address: push the"
            " WebAssembly module with `orbitq workload push FILE.wasm` and name it by the"
            " sha256:<hex> it prints"
        )
    if not spec.input:
        return
    digest_hex = digests.parse(spec.input, "input")
    size = (
        blobs.referenced_size(digest_hex, tenant=tenant, kind="input")
        if blobs is not None
        else None
    )
    if size is None:
        raise NotFoundError(
            f"input {spec.input}: tenant {tenant} has pushed no such input (PushInput, or"
            " `orbitq request submit --input FILE`)"
        )
    if size > spec.input_mb * BYTES_PER_MB:
        raise InvalidArgumentError(
            f"input {spec.input} is {size:,} bytes, more than input_mb {spec.input_mb:,} MB"
            f" ({spec.input_mb * BYTES_PER_MB:,} bytes): raise input_mb to at least"
            f" {-(-size // BYTES_PER_MB):,}"
        )
