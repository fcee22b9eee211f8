"""The signed log as stored: checkpoints, entries, proofs, and the frontier the appends extend.

Owns: signing and storing checkpoints (L5, never one that does not extend the previous: L6;
each linked to the one before it, and the head row updated to name it: L19),
reading them (latest, at a size, all, the sizes around a size), reading entries, building
inclusion and consistency proofs from the perfect-subtree hashes stored beside each leaf (L4:
O(log n) reads), and the compact range (`merkle.Frontier`) of the log as of the last commit,
which the write path extends and hands back after each commit.

Does not own: appending entries (orbitq.ledger.store.write does, inside its group commit), the
Merkle arithmetic (orbitq.ledger.merkle), or signing keys (passed in as a `Signer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from orbitq.ledger import merkle
from orbitq.ledger.checkpoint import Checkpoint, sign_checkpoint
from orbitq.ledger.checkpoint_chain import ChainLink, body_hash, chain_line
from orbitq.ledger.note import Signer
from orbitq.ledger.store.dialect import Dialect
from orbitq.ledger.store.rows import checkpoint_of, select_head
from orbitq.ledger.store.transactions import write_transaction

# Checkpoints fetched per round trip while `checkpoints()` streams them.
CHECKPOINT_PAGE_ROWS = 1000


class LedgerLog:
    """Checkpoints, entries and proofs over one engine; reads from any thread."""

    def __init__(self, engine: sa.Engine, dialect: Dialect) -> None:
        self._engine = engine
        self._dialect = dialect
        # Compact range of the log as of the last commit; None = load on next use. Replaced
        # whole, never changed in place, so a reader on another thread may copy it.
        self._frontier: merkle.Frontier | None = None

    # -- the frontier ------------------------------------------------------------------------

    def frontier_for(self, cursor: Any, size: int) -> merkle.Frontier:
        """A private copy of the frontier at `size`, from memory if this process wrote last."""
        frontier = self._frontier
        if frontier is not None and frontier.size == size:
            return frontier.copy()
        # Another replica appended, or first write since start: O(log n) reads.
        hashes = self.subtree_hashes(cursor, merkle.frontier_nodes(size))
        return merkle.Frontier.load(size, hashes.__getitem__)

    def remember(self, frontier: merkle.Frontier | None) -> None:
        """The frontier as of the commit that just ended (None: unknown, reload next time)."""
        self._frontier = frontier

    def subtree_hashes(
        self, cursor: Any, nodes: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """L4: perfect subtree (level h, index k) is stored with leaf (k+1)*2^h - 1."""
        wanted = {node: ((node[1] + 1) << node[0]) - 1 for node in nodes}
        rows = {
            int(idx): bytes(hashes)
            for idx, hashes in self._dialect.select_in(
                cursor,
                "SELECT idx, hashes FROM ledger_entries WHERE idx",
                sorted(set(wanted.values())),
            )
        }
        size = merkle.HASH_SIZE
        result: dict[tuple[int, int], bytes] = {}
        for (level, index), leaf in wanted.items():
            stored = rows.get(leaf)
            if stored is None or len(stored) < (level + 1) * size:
                raise LookupError(f"log entry {leaf} has no level-{level} hash stored")
            result[(level, index)] = stored[level * size : (level + 1) * size]
        return result

    # -- checkpoints -------------------------------------------------------------------------

    def sign_checkpoint(self, signer: Signer, origin: str, now_ns: int) -> Checkpoint:
        """Sign and store a checkpoint of the whole log (L5); returns the newest checkpoint.

        A checkpoint is never stored unless the previous one is a prefix of it (L6), so two
        inconsistent checkpoints cannot exist. Locks the head, so it waits for a group commit.
        """
        sql = self._dialect.sql
        with write_transaction(self._engine) as conn:
            cursor = conn.connection.cursor()
            head = select_head(cursor, self._dialect, lock=True)
            latest = self._latest_checkpoint(cursor)
            if latest is not None and latest.size == head.size:
                return latest
            root = self.frontier_for(cursor, head.size).root()
            if latest is not None and latest.size > 0:
                proof = self._consistency_proof(cursor, latest.size, head.size)
                merkle.verify_consistency(latest.size, head.size, proof, latest.root_hash, root)
            # L19: the checkpoint names its place in the sequence of stored checkpoints, its
            # time and the one before it (as the head records them), under its signature.
            link = ChainLink(head.checkpoints + 1, now_ns, head.checkpoint_hash)
            note = sign_checkpoint(origin, head.size, root, signer, extensions=(chain_line(link),))
            checkpoint = checkpoint_of(note)
            cursor.execute(
                sql(
                    "INSERT INTO ledger_checkpoints (size, root_hash, note, timestamp_ns)"
                    " VALUES (?, ?, ?, ?)"
                ),
                (head.size, root, note, now_ns),
            )
            cursor.execute(
                sql("UPDATE ledger_head SET checkpoints = ?, checkpoint_hash = ? WHERE id = 1"),
                (link.seq, body_hash(checkpoint)),
            )
        return checkpoint

    def latest_checkpoint(self) -> Checkpoint | None:
        with self._engine.connect() as conn:
            return self._latest_checkpoint(conn.connection.cursor())

    def checkpoint_at(self, size: int) -> Checkpoint | None:
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(
                self._dialect.sql("SELECT note FROM ledger_checkpoints WHERE size = ?"), (size,)
            )
            row = cursor.fetchone()
        return checkpoint_of(str(row[0])) if row is not None else None

    def checkpoints(self) -> Iterator[Checkpoint]:
        """Every stored checkpoint, oldest first."""
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute("SELECT note FROM ledger_checkpoints ORDER BY size")
            while rows := cursor.fetchmany(CHECKPOINT_PAGE_ROWS):
                for (note,) in rows:
                    yield checkpoint_of(str(note))

    def checkpoint_sizes_around(self, size: int) -> tuple[int | None, int | None]:
        """The sizes of the stored checkpoints just below and just above `size` (None: none)."""
        found: list[int | None] = []
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            for query in (
                "SELECT MAX(size) FROM ledger_checkpoints WHERE size < ?",
                "SELECT MIN(size) FROM ledger_checkpoints WHERE size > ?",
            ):
                cursor.execute(self._dialect.sql(query), (size,))
                row = cursor.fetchone()
                found.append(int(row[0]) if row is not None and row[0] is not None else None)
        return found[0], found[1]

    def _latest_checkpoint(self, cursor: Any) -> Checkpoint | None:
        cursor.execute("SELECT note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
        row = cursor.fetchone()
        return checkpoint_of(str(row[0])) if row is not None else None

    # -- entries and proofs ------------------------------------------------------------------

    def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Leaves [start, end) as stored."""
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(
                self._dialect.sql(
                    "SELECT idx, data FROM ledger_entries WHERE idx >= ? AND idx < ? ORDER BY idx"
                ),
                (start, end),
            )
            return [(int(idx), bytes(data)) for idx, data in cursor.fetchall()]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self._engine.connect() as conn:
            cursor = conn.connection.cursor()
            hashes = self.subtree_hashes(cursor, merkle.inclusion_proof_nodes(index, size))
        return merkle.inclusion_proof(index, size, hashes.__getitem__)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self._engine.connect() as conn:
            return self._consistency_proof(conn.connection.cursor(), size1, size2)

    def _consistency_proof(self, cursor: Any, size1: int, size2: int) -> list[bytes]:
        hashes = self.subtree_hashes(cursor, merkle.consistency_proof_nodes(size1, size2))
        return merkle.consistency_proof(size1, size2, hashes.__getitem__)
