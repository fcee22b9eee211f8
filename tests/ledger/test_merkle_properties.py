"""Properties of the Merkle log over random sizes and leaves, against the RFC reference root_of."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orbitq.ledger import (
    ConsistencyProofError,
    Frontier,
    InclusionProofError,
    consistency_proof,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    leaf_hash,
    root_from_subtrees,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger.ledger_vectors import build_store

SIZE_MAX = 300
# Fast: a bounded example count, no deadline (shared CI machines are noisy). The edges (powers
# of two and their neighbours, the largest size) are always tried through @example.
FAST = settings(max_examples=40, deadline=None)

sizes = st.integers(min_value=1, max_value=SIZE_MAX)
salts = st.binary(min_size=0, max_size=8)
picks = st.integers(min_value=0, max_value=2**16)
masks = st.integers(min_value=1, max_value=255)


def _leaves(size: int, salt: bytes) -> list[bytes]:
    """`size` distinct leaf hashes; the salt makes each example's tree different."""
    return [leaf_hash(salt + index.to_bytes(4, "big")) for index in range(size)]


def _flip_byte(proof: list[bytes], position: int, offset: int, mask: int) -> list[bytes]:
    altered = [*proof]
    changed = bytearray(altered[position])
    changed[offset] ^= mask
    altered[position] = bytes(changed)
    return altered


class _Recorder:
    """A SubtreeReader that remembers what it was asked for."""

    def __init__(self, store: dict[tuple[int, int], bytes]) -> None:
        self.store = store
        self.reads: list[tuple[int, int]] = []

    def __call__(self, node: tuple[int, int]) -> bytes:
        self.reads.append(node)
        return self.store[node]


@FAST
@given(sizes, salts)
@example(SIZE_MAX, b"")
@example(256, b"")
def test_appended_roots_equal_the_reference(size: int, salt: bytes) -> None:
    leaves = _leaves(size, salt)
    frontier = Frontier.empty()
    for count, leaf in enumerate(leaves, 1):
        frontier.append(leaf)
        assert frontier.size == count
        assert frontier.root() == root_of(leaves[:count])


@FAST
@given(sizes, salts)
@example(SIZE_MAX, b"")
@example(256, b"")
def test_rows_are_exactly_the_perfect_subtrees(size: int, salt: bytes) -> None:
    leaves = _leaves(size, salt)
    frontier = Frontier.empty()
    for index, leaf in enumerate(leaves):
        row = frontier.append(leaf)
        trailing_zeros = ((index + 1) & -(index + 1)).bit_length() - 1
        assert len(row) == trailing_zeros + 1
        for level, value in enumerate(row):
            first = index + 1 - (1 << level)
            assert value == root_of(leaves[first : index + 1])


@FAST
@given(sizes, salts, picks, picks, masks)
@example(SIZE_MAX, b"", SIZE_MAX - 1, SIZE_MAX - 1, 1)
@example(257, b"", 256, 256, 0x80)
@example(256, b"", 255, 0, 0xFF)
@example(255, b"", 254, 127, 1)
def test_every_inclusion_proof_verifies_and_any_flipped_byte_fails(
    size: int, salt: bytes, pick_size: int, pick_index: int, mask: int
) -> None:
    leaves = _leaves(size, salt)
    _, store = build_store(leaves)
    tree_size = 1 + pick_size % size
    root = root_of(leaves[:tree_size])
    assert root_from_subtrees(tree_size, store.__getitem__) == root
    proofs = []
    for index in range(tree_size):
        reader = _Recorder(store)
        proof = inclusion_proof(index, tree_size, reader)
        assert sorted(set(reader.reads)) == sorted(inclusion_proof_nodes(index, tree_size))
        assert len(reader.reads) <= 2 * tree_size.bit_length()
        verify_inclusion(leaves[index], index, tree_size, proof, root)
        proofs.append(proof)
    index = pick_index % tree_size
    proof = proofs[index]
    for position in range(len(proof)):
        for offset in range(len(proof[position])):
            altered = _flip_byte(proof, position, offset, mask)
            with pytest.raises(InclusionProofError):
                verify_inclusion(leaves[index], index, tree_size, altered, root)


@FAST
@given(sizes, salts, picks, masks)
@example(SIZE_MAX, b"", 256, 1)
@example(257, b"", 255, 0x80)
@example(256, b"", 127, 0xFF)
def test_every_consistency_proof_verifies_and_fails_for_another_root(
    size: int, salt: bytes, pick: int, mask: int
) -> None:
    leaves = _leaves(size, salt)
    _, store = build_store(leaves)
    root2 = root_of(leaves)
    frontier = Frontier.empty()
    for size1 in range(1, size + 1):
        frontier.append(leaves[size1 - 1])
        root1 = frontier.root()
        reader = _Recorder(store)
        proof = consistency_proof(size1, size, reader)
        assert sorted(set(reader.reads)) == sorted(consistency_proof_nodes(size1, size))
        assert len(reader.reads) <= 2 * size.bit_length()
        verify_consistency(size1, size, proof, root1, root2)
        other = hashlib.sha256(b"not the root" + root1).digest()
        with pytest.raises(ConsistencyProofError):
            verify_consistency(size1, size, proof, other, root2)
    size1 = 1 + pick % size
    proof = consistency_proof(size1, size, store.__getitem__)
    root1 = root_of(leaves[:size1])
    if size1 > 1:  # a different tree of the same size
        with pytest.raises(ConsistencyProofError):
            verify_consistency(size1, size, proof, root_of(leaves[1 : size1 + 1]), root2)
    for position in range(len(proof)):
        for offset in range(len(proof[position])):
            altered = _flip_byte(proof, position, offset, mask)
            with pytest.raises(ConsistencyProofError):
                verify_consistency(size1, size, altered, root1, root2)


@FAST
@given(sizes, salts, picks)
@example(SIZE_MAX, b"", 0)
@example(SIZE_MAX, b"", 256)
def test_a_loaded_frontier_continues_like_the_original(size: int, salt: bytes, pick: int) -> None:
    leaves = _leaves(size, salt)
    original, store = build_store(leaves)
    cut = pick % (size + 1)
    loaded = Frontier.load(cut, store.__getitem__)
    assert loaded.root() == root_of(leaves[:cut])
    replay = Frontier.empty()
    rows = [replay.append(leaf) for leaf in leaves]
    assert [loaded.append(leaf) for leaf in leaves[cut:]] == rows[cut:]
    assert loaded.root() == original.root()


@FAST
@given(st.lists(st.binary(max_size=40), max_size=70), st.integers(min_value=0, max_value=69))
def test_append_entries_is_append_of_each_leaf(entries: list[bytes], split: int) -> None:
    one_by_one = Frontier.empty()
    expected = [b"".join(one_by_one.append(leaf_hash(data))) for data in entries]
    batched = Frontier.empty()
    rows = batched.append_entries(entries[:split]) + batched.append_entries(entries[split:])
    assert rows == expected
    assert batched.size == one_by_one.size == len(entries)
    assert batched.root() == one_by_one.root()
