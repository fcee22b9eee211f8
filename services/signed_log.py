"""The signed log as the broker serves it: checkpoints, entries, proofs and the public key.

Owns: what LedgerService answers (docs/ledger-format.md, rules S1-S3): which checkpoint a
request means (0 = the latest, else a stored checkpoint of exactly that size), the bounds of
every range, page sizes, and errors a person can act on (NOT_FOUND names the nearest
checkpoint sizes; an entry not yet under a checkpoint is FAILED_PRECONDITION: retry shortly).
Every proof is built for the tree size of the checkpoint returned with it (L8).

Who may call what (S1; checked here, first, against the caller's Principal):

| method | operator | tenant key | node key |
| --- | --- | --- | --- |
| `checkpoint` | yes, also `fresh` (signs one now) | yes, not `fresh` | yes, not `fresh` |
| `entries`, `public_key` | yes | yes | yes |
| `inclusion_proof`, `transfer_inclusion_proof`, `consistency_proof` | yes | yes | yes |

The log is public evidence: tenants verify their own transfers and hold the broker to its
history, and every entry is already covered by signed checkpoints; only signing a checkpoint
on demand (`fresh`, a write and an Ed25519 signature per call) is for operators.

Does not own: SQL and proof construction (orbitq.ledger.store, orbitq.ledger.merkle), signing
(the broker's `sign_checkpoint`), or transport (the servicer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orbitq.ledger.checkpoint import Checkpoint
from orbitq.ledger.model import ID_BYTES, id_from_bytes
from orbitq.ledger.note import Verifier
from orbitq.ledger.store import LedgerStore
from orbitq.services.auth import ANY_ROLE, Principal
from orbitq.services.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)

# GetEntries: entries per page when the request says 0, and at most (a page stays < 1 MB).
ENTRIES_PAGE_DEFAULT = 100
ENTRIES_PAGE_MAX = 1000


@dataclass(frozen=True, slots=True)
class EntriesPage:
    entries: list[tuple[int, bytes]]
    # Index of the first entry of the next page; 0 when the range is exhausted.
    next_start: int


@dataclass(frozen=True, slots=True)
class InclusionProof:
    index: int
    entry: bytes
    hashes: list[bytes]
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    from_size: int
    hashes: list[bytes]
    checkpoint: Checkpoint


class SignedLog:
    def __init__(
        self,
        store: LedgerStore,
        sign_checkpoint: Callable[[], Checkpoint],
        verifier: Verifier,
    ) -> None:
        self._store = store
        self._sign_checkpoint = sign_checkpoint
        self._verifier = verifier

    def public_key(self, principal: Principal) -> Verifier:
        """The broker's checkpoint key (its name is the log's origin)."""
        principal.require_role(*ANY_ROLE, action="reading the log's public key")
        return self._verifier

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, principal: Principal, fresh: bool) -> Checkpoint:
        """The latest checkpoint; with `fresh`, one signed now over every committed entry."""
        if fresh:
            principal.require_operator("signing a fresh checkpoint")
            return self._sign_checkpoint()
        principal.require_role(*ANY_ROLE, action="reading checkpoints")
        return self._latest()

    def _latest(self) -> Checkpoint:
        latest = self._store.latest_checkpoint()
        if latest is None:
            raise FailedPreconditionError(
                "the broker has not signed a checkpoint yet; retry in a few seconds"
            )
        return latest

    def checkpoint_of_size(self, size: int) -> Checkpoint:
        """L8, L9: the stored checkpoint of exactly `size` entries; 0 = the latest."""
        if size == 0:
            return self._latest()
        if size > self._store.head().size:  # also keeps uint64 values out of the SQL
            latest = self._latest()
            raise NotFoundError(
                f"no checkpoint of tree size {size}: the log has only "
                f"{self._store.head().size} entries (the latest checkpoint has size "
                f"{latest.size}); pass 0 for the latest"
            )
        found = self._store.checkpoint_at(size)
        if found is not None:
            return found
        below, above = self._store.checkpoint_sizes_around(size)
        nearest = " and ".join(str(value) for value in (below, above) if value is not None)
        hint = f"the nearest checkpoints have sizes {nearest}" if nearest else "none is stored"
        raise NotFoundError(
            f"no checkpoint of tree size {size} ({hint}); proofs are built only for signed "
            "checkpoints: pass one of their sizes, or 0 for the latest"
        )

    # -- entries -------------------------------------------------------------------------------

    def entries(self, principal: Principal, start: int, end: int, page_size: int) -> EntriesPage:
        """Entries [start, end) as stored, one page; `end` 0 = the latest checkpoint's size."""
        principal.require_role(*ANY_ROLE, action="reading log entries")
        log_size = self._store.head().size
        if end == 0:
            end = self._latest().size
        if start > end:
            raise InvalidArgumentError(
                f"start {start} is after end {end}: ask for entries [start, end) with start <= end"
            )
        if end > log_size:
            raise InvalidArgumentError(f"end {end} is beyond the log, which has {log_size} entries")
        size = ENTRIES_PAGE_DEFAULT if page_size <= 0 else min(page_size, ENTRIES_PAGE_MAX)
        stop = min(end, start + size)
        rows = self._store.entries(start, stop) if stop > start else []
        next_start = stop if stop < end else 0
        return EntriesPage(rows, next_start)

    # -- proofs --------------------------------------------------------------------------------

    def _transfer_entry(self, raw_id: bytes) -> int:
        """The log index of the entry that records the transfer with this 16-byte id."""
        if len(raw_id) != ID_BYTES:
            raise InvalidArgumentError(f"transfer_id must be {ID_BYTES} bytes, got {len(raw_id)}")
        transfer_id = id_from_bytes(raw_id)
        stored = self._store.transfer(transfer_id)
        if stored is None:
            raise NotFoundError(f"no transfer with id {raw_id.hex()} is in the ledger")
        if stored.entry_index < 0:
            raise NotFoundError(f"transfer {raw_id.hex()} has no entry in the signed log")
        return stored.entry_index

    def inclusion_proof(self, principal: Principal, index: int, tree_size: int) -> InclusionProof:
        """L8: entry `index` is in the tree of the checkpoint of `tree_size` (0 = latest)."""
        principal.require_role(*ANY_ROLE, action="reading inclusion proofs")
        return self._inclusion_proof(index, tree_size, by_transfer=False)

    def transfer_inclusion_proof(
        self, principal: Principal, transfer_id: bytes, tree_size: int
    ) -> InclusionProof:
        """L8 for the entry that records the transfer with this 16-byte id."""
        principal.require_role(*ANY_ROLE, action="reading inclusion proofs")
        return self._inclusion_proof(self._transfer_entry(transfer_id), tree_size, by_transfer=True)

    def _inclusion_proof(self, index: int, tree_size: int, *, by_transfer: bool) -> InclusionProof:
        checkpoint = self.checkpoint_of_size(tree_size)
        if index >= checkpoint.size:
            log_size = self._store.head().size
            what = "the transfer's entry" if by_transfer else "entry"
            if index >= log_size:
                raise InvalidArgumentError(
                    f"{what} {index} is beyond the log, which has {log_size} entries"
                )
            if tree_size == 0:
                raise FailedPreconditionError(
                    f"{what} {index} is not covered by the latest checkpoint (size "
                    f"{checkpoint.size}) yet; checkpoints are signed every few seconds: retry"
                )
            raise InvalidArgumentError(
                f"{what} {index} is not in the tree of size {checkpoint.size}: ask for a later "
                "checkpoint (tree_size 0 = the latest)"
            )
        entries = self._store.entries(index, index + 1)
        if not entries:
            raise NotFoundError(f"entry {index} is missing from the store")
        hashes = self._store.inclusion_proof(index, checkpoint.size)
        return InclusionProof(index, entries[0][1], hashes, checkpoint)

    def consistency_proof(
        self, principal: Principal, from_size: int, to_size: int
    ) -> ConsistencyProof:
        """L9: the tree of `from_size` is a prefix of the checkpoint of `to_size` (0 = latest)."""
        principal.require_role(*ANY_ROLE, action="reading consistency proofs")
        if from_size == 0:
            raise InvalidArgumentError(
                "from_size must be > 0: no consistency proof exists from the empty tree (L9); "
                "a client that trusted nothing checks the new checkpoint's signature only"
            )
        checkpoint = self.checkpoint_of_size(to_size)
        if from_size > checkpoint.size:
            raise InvalidArgumentError(
                f"from_size {from_size} is larger than to_size {checkpoint.size}: a log never "
                "shrinks, so there is no proof"
            )
        hashes = self._store.consistency_proof(from_size, checkpoint.size)
        return ConsistencyProof(from_size, hashes, checkpoint)
