"""The RFC 6962 / RFC 9162 Merkle tree of the ledger log: hashing, appending, proofs, checks.

Owns: leaf and node hashing (L2, L3); the `Frontier` that appends leaves in amortised O(1)
hashing (L6); the shape of the tree in terms of *perfect subtrees*, the only node hashes the
broker stores (L4, L5); building roots, inclusion proofs and consistency proofs from those
stored hashes in O(log n) reads (L8, L9); and verifying proofs exactly as RFC 9162 §2.1.3.2
and §2.1.4.2 say, with the numbered steps cited beside the code.

Does not own: where the stored hashes live (the store passes a `SubtreeReader`, usually
`dict.__getitem__` over one prefetch query), what the leaves mean, or checkpoints and
signatures (orbitq.ledger.checkpoint).

Coordinates: the perfect subtree (level h, index k) covers leaves [k·2^h, (k+1)·2^h). Its hash
is completed by appending leaf (k+1)·2^h - 1 and stored in that leaf's row at position h, so
leaf i's row holds levels 0..t where t is the number of trailing zeros of i + 1 (L4).
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256
from typing import Protocol

from orbitq.ledger.errors import ConsistencyProofError, HashSizeError, InclusionProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "TREE_SIZE_MAX",
    "Frontier",
    "SubtreeReader",
    "consistency_proof",
    "consistency_proof_nodes",
    "frontier_nodes",
    "inclusion_proof",
    "inclusion_proof_nodes",
    "leaf_hash",
    "node_hash",
    "root_from_subtrees",
    "root_nodes",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the log (SHA-256)."""

TREE_SIZE_MAX = 2**64 - 1
"""The largest tree size (L7): sizes and indices are uint64 in RFC 9162 and tlog-checkpoint."""

EMPTY_ROOT = sha256(b"").digest()
"""The root of the empty tree, SHA-256 of nothing (L3)."""


class SubtreeReader(Protocol):
    """Returns the stored hash of the perfect subtree `(level, index)`; raises if not stored.

    It takes the pair as one argument so that a `dict[tuple[int, int], bytes]` filled by one
    query over a `*_nodes(...)` list can be passed as `hashes.__getitem__` (L5).
    """

    def __call__(self, node: tuple[int, int], /) -> bytes: ...


# Hashing is prefix-then-data; copying a hasher that has already absorbed the one-byte domain
# prefix avoids concatenating (copying) the data, and is the cheapest form in CPython.
_LEAF_PREFIX = sha256(b"\x00")
_NODE_PREFIX = sha256(b"\x01")


def leaf_hash(data: bytes) -> bytes:
    """L2: SHA-256(0x00 ‖ data), the hash of one leaf of exactly these stored bytes."""
    hasher = _LEAF_PREFIX.copy()
    hasher.update(data)
    return hasher.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """L2: SHA-256(0x01 ‖ left ‖ right). Takes any bytes, so the RFC test vectors apply."""
    hasher = _NODE_PREFIX.copy()
    hasher.update(left)
    hasher.update(right)
    return hasher.digest()


def _split(size: int) -> int:
    """L3: the largest power of two strictly smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """L3: the tree hash of these leaf hashes by the RFC's recursive definition.

    The reference implementation: O(n) hashing, recursion depth O(log n). The broker never uses
    it on the live log (a `Frontier` does that); `orbitq ledger verify` and the tests do.
    """

    def mth(start: int, end: int) -> bytes:
        if end - start == 1:
            return leaf_hashes[start]
        middle = start + _split(end - start)
        return node_hash(mth(start, middle), mth(middle, end))

    if not leaf_hashes:
        return EMPTY_ROOT
    return mth(0, len(leaf_hashes))


# --- The shape of the tree in perfect subtrees (L4, L5) ---------------------------------------


def _check_size(size: int) -> None:
    if not 0 <= size <= TREE_SIZE_MAX:
        raise ValueError(f"tree size {size} is outside 0..2^64-1 (L7)")


def _cover(start: int, end: int) -> list[tuple[int, int]]:
    """L5: the perfect subtrees, left to right, whose right fold is the node [start, end).

    [start, end) is a node of some tree: a perfect subtree or a right edge, so `start` is a
    multiple of every power of two in the binary decomposition of end - start.
    """
    nodes: list[tuple[int, int]] = []
    position = start
    remaining = end - start
    for level in range(remaining.bit_length() - 1, -1, -1):
        if remaining >> level & 1:
            assert position % (1 << level) == 0, (start, end)
            nodes.append((level, position >> level))
            position += 1 << level
    assert position == end, (start, end)
    return nodes


def _fold(nodes: Sequence[tuple[int, int]], subtree: SubtreeReader) -> bytes:
    """L5: the hash of a node from its perfect-subtree cover: read each, fold from the right."""
    result = _read(subtree, nodes[-1])
    for node in reversed(nodes[:-1]):
        result = node_hash(_read(subtree, node), result)
    return result


def _read(subtree: SubtreeReader, node: tuple[int, int]) -> bytes:
    value = subtree(node)
    if len(value) != HASH_SIZE:
        raise HashSizeError(
            f"stored hash of perfect subtree (level {node[0]}, index {node[1]}) has "
            f"{len(value)} bytes, not {HASH_SIZE}: the store is corrupt; run `orbitq ledger verify`"
        )
    return value


def _inclusion_siblings(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]) as node ranges [start, end), leaf level first."""
    siblings: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            siblings.append((middle, end))
            end = middle
        else:
            siblings.append((start, middle))
            start = middle
    siblings.reverse()
    return siblings


def _consistency_nodes(size1: int, size2: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true) as node ranges, in order.

    0 < size1 < size2. SUBPROOF appends the sibling after the recursive part, so the ranges are
    collected top-down and reversed; the node [0, m) itself is included only when it is not a
    whole left subtree of the recursion (b false), as the RFC says.
    """
    ranges: list[tuple[int, int]] = []
    start, end = 0, size2
    complete = True  # the RFC's b: the old tree so far is a whole left subtree
    while size1 - start != end - start:
        middle = start + _split(end - start)
        if size1 <= middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            start = middle
            complete = False
    if not complete:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def _unique(groups: Sequence[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    seen: dict[tuple[int, int], None] = {}
    for group in groups:
        seen.update(dict.fromkeys(group))
    return list(seen)


def frontier_nodes(size: int) -> list[tuple[int, int]]:
    """L6: the perfect subtrees of size's binary decomposition, largest (leftmost) first."""
    _check_size(size)
    return _cover(0, size)


def root_nodes(size: int) -> list[tuple[int, int]]:
    """L5: the stored hashes `root_from_subtrees(size, ...)` reads (the frontier's nodes)."""
    return frontier_nodes(size)


def root_from_subtrees(size: int, subtree: SubtreeReader) -> bytes:
    """L5: the root of the tree of `size` leaves from at most log2(size)+1 stored hashes."""
    nodes = root_nodes(size)
    return _fold(nodes, subtree) if nodes else EMPTY_ROOT


def _check_inclusion_args(index: int, size: int) -> None:
    _check_size(size)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")


def _check_consistency_args(size1: int, size2: int) -> None:
    _check_size(size2)
    if not 0 < size1 <= size2:
        raise ValueError(
            f"a consistency proof needs 0 < size1 <= size2, got {size1} and {size2} (L9)"
        )


def inclusion_proof_nodes(index: int, size: int) -> list[tuple[int, int]]:
    """L8: every stored hash `inclusion_proof(index, size, ...)` reads, without duplicates."""
    _check_inclusion_args(index, size)
    return _unique([_cover(start, end) for start, end in _inclusion_siblings(index, size)])


def inclusion_proof(index: int, size: int, subtree: SubtreeReader) -> list[bytes]:
    """L8: the RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves.

    Reads at most 2·log2(size) stored hashes: the siblings under the right edge are perfect
    subtrees; at most one sibling is a right-edge node, folded from perfect ones (L5).
    """
    _check_inclusion_args(index, size)
    return [_fold(_cover(start, end), subtree) for start, end in _inclusion_siblings(index, size)]


def consistency_proof_nodes(size1: int, size2: int) -> list[tuple[int, int]]:
    """L9: every stored hash `consistency_proof(size1, size2, ...)` reads, without duplicates."""
    _check_consistency_args(size1, size2)
    if size1 == size2:
        return []
    return _unique([_cover(start, end) for start, end in _consistency_nodes(size1, size2)])


def consistency_proof(size1: int, size2: int, subtree: SubtreeReader) -> list[bytes]:
    """L9: the RFC 9162 proof that the tree of size1 leaves is a prefix of that of size2.

    Empty when size1 == size2. At most one node is a right-edge node (L5), so O(log n) reads.
    """
    _check_consistency_args(size1, size2)
    if size1 == size2:
        return []
    return [_fold(_cover(start, end), subtree) for start, end in _consistency_nodes(size1, size2)]


# --- Appending ---------------------------------------------------------------------------------


class Frontier:
    """L6: the compact range [0, size): the hashes of the perfect subtrees of size's binary
    decomposition, largest first. Enough to append and to compute the root, nothing more.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self, size: int, nodes: Sequence[bytes]) -> None:
        """Prefer `Frontier.empty()` and `Frontier.load()`; `nodes` follow `frontier_nodes`."""
        _check_size(size)
        if len(nodes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} nodes")
        for node in nodes:
            if len(node) != HASH_SIZE:
                raise HashSizeError(f"frontier hash has {len(node)} bytes, not {HASH_SIZE}")
        self._size = size
        self._nodes = list(nodes)

    @classmethod
    def empty(cls) -> Frontier:
        """The frontier of the empty log."""
        return cls(0, [])

    @classmethod
    def load(cls, size: int, subtree: SubtreeReader) -> Frontier:
        """The frontier of the stored log of `size` leaves, from its O(log n) stored hashes."""
        return cls(size, [_read(subtree, node) for node in frontier_nodes(size)])

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> list[bytes]:
        """L4, L6: append one leaf hash; return the hashes it completes, level 0 first.

        The result is exactly what the store keeps in this leaf's row: the leaf hash, then one
        hash per perfect subtree that this leaf closes. Amortised one node hash per leaf.
        """
        if len(leaf) != HASH_SIZE:
            raise HashSizeError(f"leaf hash has {len(leaf)} bytes, not {HASH_SIZE} (L2)")
        size = self._size
        if size == TREE_SIZE_MAX:
            raise ValueError("the log is full: 2^64-1 leaves (L7)")
        nodes = self._nodes
        completed = [leaf]
        current = leaf
        carry = size
        while carry & 1:  # each trailing one of size closes a perfect subtree
            current = node_hash(nodes.pop(), current)
            completed.append(current)
            carry >>= 1
        nodes.append(current)
        self._size = size + 1
        return completed

    def append_entries(self, entries: Sequence[bytes]) -> list[bytes]:
        """L2, L4, L6: append the leaves of these entry bytes; return, per entry, its stored
        row: the leaf hash then each subtree hash it completes, concatenated.

        The same as `b"".join(self.append(leaf_hash(data)))` per entry, in one tight loop: the
        broker's append path runs this for every entry it commits.
        """
        size = self._size
        if size > TREE_SIZE_MAX - len(entries):
            raise ValueError("the log is full: 2^64-1 leaves (L7)")
        nodes = self._nodes
        leaf_prefix = _LEAF_PREFIX
        node_prefix = _NODE_PREFIX
        rows: list[bytes] = []
        for data in entries:
            hasher = leaf_prefix.copy()
            hasher.update(data)
            current = hasher.digest()
            if size & 1:
                completed = [current]
                carry = size
                while carry & 1:  # each trailing one of size closes a perfect subtree
                    hasher = node_prefix.copy()
                    hasher.update(nodes.pop())
                    hasher.update(current)
                    current = hasher.digest()
                    completed.append(current)
                    carry >>= 1
                rows.append(b"".join(completed))
            else:
                rows.append(current)
            nodes.append(current)
            size += 1
        self._size = size
        return rows

    def copy(self) -> Frontier:
        """An independent frontier to append to tentatively (kept only if a write commits)."""
        clone = Frontier.__new__(Frontier)
        clone._size = self._size
        clone._nodes = list(self._nodes)
        return clone

    def root(self) -> bytes:
        """L3, L5: the root of the tree of `size` leaves: the right fold of the frontier."""
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        result = nodes[-1]
        for node in reversed(nodes[:-1]):
            result = node_hash(node, result)
        return result

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"


# --- Verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise HashSizeError(f"{what} has {len(value)} bytes, not {HASH_SIZE} (L2)")


def _check_proof_hashes(proof: Sequence[bytes], kind: str) -> None:
    for position, value in enumerate(proof):
        _check_hash(value, f"{kind} proof hash #{position}")


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """L8: return if `proof` shows `leaf_hash` at `index` in the tree of `tree_size` with `root`.

    Raises InclusionProofError (the proof is wrong, or index/size are impossible) or
    HashSizeError (some hash is not 32 bytes). Never returns a value to forget to check.
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root")
    if not 0 <= tree_size <= TREE_SIZE_MAX:
        raise InclusionProofError(f"tree size {tree_size} is outside 0..2^64-1 (L7)")
    # (1) If leaf_index >= tree_size, fail.
    if not 0 <= index < tree_size:
        raise InclusionProofError(
            f"leaf index {index} is not in a tree of size {tree_size}: ask for a proof against a "
            "checkpoint that includes the entry"
        )
    # L8: the proof's length is fixed by index and size; a hash too many or too few fails here,
    # before any hashing and with a clear message (the RFC steps below would also reject it).
    expected = len(_inclusion_siblings(index, tree_size))
    if len(proof) != expected:
        raise InclusionProofError(
            f"inclusion proof for leaf {index} in a tree of size {tree_size} has {len(proof)} "
            f"hashes; it must have exactly {expected}"
        )
    _check_proof_hashes(proof, "inclusion")
    # (2) Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, tree_size - 1
    # (3) Set r to hash.
    r = leaf_hash
    # (4) For each value p in the inclusion_path array:
    for p in proof:
        # (4a) If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise InclusionProofError(f"inclusion proof for leaf {index} has too many hashes")
        # (4b) If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # (4b.i) Set r to HASH(0x01 || p || r).
            r = node_hash(p, r)
            # (4b.ii) If LSB(fn) is not set, then right-shift both fn and sn equally until
            # either LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # (4b, otherwise) Set r to HASH(0x01 || r || p).
            r = node_hash(r, p)
        # (4c) Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # (5) Compare sn to 0. Compare r against the root_hash.
    if sn != 0:
        raise InclusionProofError(f"inclusion proof for leaf {index} has too few hashes")
    if r != root:
        raise InclusionProofError(
            f"inclusion proof for leaf {index} in a tree of size {tree_size} does not lead to "
            "the root: the entry, the proof or the checkpoint was altered"
        )


def _check_consistency_sizes(size1: int, size2: int) -> None:
    """L9: the sizes a consistency proof can exist between."""
    if size1 == 0:
        raise ConsistencyProofError(
            "no consistency proof exists from a tree of size 0 (RFC 9162 §2.1.4.2 requires "
            "0 < first): an empty tree is a prefix of every tree, check root1 == EMPTY_ROOT "
            "instead (L9)"
        )
    if not 0 < size1 <= size2 <= TREE_SIZE_MAX:
        raise ConsistencyProofError(
            f"a consistency proof needs 0 < size1 <= size2 <= 2^64-1, got size1={size1}, "
            f"size2={size2}: a log never shrinks, so a smaller new size means a rewritten log"
        )


def _check_same_tree(size: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """L9: between equal sizes the proof is empty and the roots are equal."""
    if proof:
        raise ConsistencyProofError(
            f"consistency proof between equal sizes ({size}) must be empty, got {len(proof)} hashes"
        )
    if root1 != root2:
        raise ConsistencyProofError(
            f"two different roots for the same tree size {size}: the log has forked; keep both "
            "signed checkpoints as evidence"
        )


def _consistency_walk(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes, int]:
    """RFC 9162 §2.1.4.2 steps (1) to (6): return fr, sr and sn for step (7)."""
    # (1) If consistency_path is an empty array, stop and fail the proof verification.
    if not proof:
        raise ConsistencyProofError(f"empty consistency proof from size {size1} to {size2}")
    path = list(proof)
    # (2) If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # (3) Set fn to first - 1 and sn to second - 1.
    fn, sn = size1 - 1, size2 - 1
    # (4) If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # (5) Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # (6) For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # (6a) If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise ConsistencyProofError(
                f"consistency proof from size {size1} to {size2} has too many hashes"
            )
        # (6b) If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # (6b.i) Set fr to HASH(0x01 || c || fr). (6b.ii) Set sr to HASH(0x01 || c || sr).
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # (6b.iii) If LSB(fn) is not set, then right-shift both fn and sn equally until
            # either LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # (6b, otherwise) Set sr to HASH(0x01 || sr || c).
            sr = node_hash(sr, c)
        # (6c) Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    return fr, sr, sn


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """L9: return if `proof` shows the tree (size1, root1) is a prefix of (size2, root2).

    Raises ConsistencyProofError or HashSizeError. size1 must be > 0: a client whose trusted
    tree is empty needs no proof, only root1 == EMPTY_ROOT (L9). Equal sizes need an empty
    proof and equal roots.
    """
    _check_hash(root1, "first root")
    _check_hash(root2, "second root")
    _check_consistency_sizes(size1, size2)
    if size1 == size2:
        _check_same_tree(size1, proof, root1, root2)
        return
    # L9: the proof's length is fixed by the sizes; checked before any hashing.
    expected = len(_consistency_nodes(size1, size2))
    if len(proof) != expected:
        raise ConsistencyProofError(
            f"consistency proof from size {size1} to {size2} has {len(proof)} hashes; it must "
            f"have exactly {expected}"
        )
    _check_proof_hashes(proof, "consistency")
    fr, sr, sn = _consistency_walk(size1, size2, proof, root1)
    # (7) Verify that fr equals first_hash, sr equals second_hash, and sn is 0.
    if sn != 0:
        raise ConsistencyProofError(
            f"consistency proof from size {size1} to {size2} has too few hashes"
        )
    if fr != root1:
        raise ConsistencyProofError(
            f"consistency proof does not lead to the first root (size {size1}): the proof or the "
            "trusted checkpoint does not match this log"
        )
    if sr != root2:
        raise ConsistencyProofError(
            f"consistency proof does not lead to the second root (size {size2}): the new "
            "checkpoint is not an extension of the trusted one"
        )
