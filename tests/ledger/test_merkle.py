"""The Merkle log against the RFC 6962 vectors, and every way a proof can be wrong."""

from __future__ import annotations

from typing import Any

import pytest

from orbitq.ledger import (
    EMPTY_ROOT,
    HASH_SIZE,
    ConsistencyProofError,
    Frontier,
    HashSizeError,
    InclusionProofError,
    LedgerIntegrityError,
    consistency_proof,
    consistency_proof_nodes,
    frontier_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    leaf_hash,
    node_hash,
    root_from_subtrees,
    root_nodes,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger.ledger_vectors import build_store, rfc6962, rfc_leaf_hashes, rfc_root

NOTHING_STORED: dict[tuple[int, int], bytes] = {}
INCLUSION = rfc6962()["inclusion_proofs"]
CONSISTENCY = rfc6962()["consistency_proofs"]


def _hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


def _flip(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def _inclusion_args(vector: dict[str, Any]) -> tuple[bytes, int, int, list[bytes], bytes]:
    return (
        bytes.fromhex(vector["leaf_hash_hex"]),
        vector["leaf_index"],
        vector["tree_size"],
        _hexes(vector["proof_hex"]),
        bytes.fromhex(vector["root_hex"]),
    )


def _consistency_args(vector: dict[str, Any]) -> tuple[int, int, list[bytes], bytes, bytes]:
    return (
        vector["size1"],
        vector["size2"],
        _hexes(vector["proof_hex"]),
        bytes.fromhex(vector["root1_hex"]),
        bytes.fromhex(vector["root2_hex"]),
    )


def _id(vector: dict[str, Any]) -> str:
    if "leaf_index" in vector:
        return f"leaf{vector['leaf_index']}-of-{vector['tree_size']}"
    return f"{vector['size1']}-to-{vector['size2']}"


# --- Vectors ---------------------------------------------------------------------------------


def test_single_hash_vectors() -> None:
    empty, empty_leaf, leaf, node = rfc6962()["single_hash_vectors"]
    assert EMPTY_ROOT.hex() == empty["want"]
    assert root_of([]) == EMPTY_ROOT
    assert leaf_hash(bytes.fromhex(empty_leaf["input_hex"])).hex() == empty_leaf["want"]
    assert leaf_hash(bytes.fromhex(leaf["input_hex"])).hex() == leaf["want"]
    left, right = bytes.fromhex(node["left_hex"]), bytes.fromhex(node["right_hex"])
    assert node_hash(left, right).hex() == node["want"]
    assert HASH_SIZE == len(EMPTY_ROOT) == 32


@pytest.mark.parametrize("size", range(9))
def test_roots_of_every_size_0_to_8(size: int) -> None:
    leaves = rfc_leaf_hashes()[:size]
    frontier, store = build_store(leaves)
    assert root_of(leaves) == rfc_root(size)
    assert frontier.root() == rfc_root(size)
    assert frontier.size == size
    assert root_from_subtrees(size, store.__getitem__) == rfc_root(size)
    assert Frontier.load(size, store.__getitem__).root() == rfc_root(size)


@pytest.mark.parametrize("vector", INCLUSION, ids=_id)
def test_inclusion_vectors(vector: dict[str, Any]) -> None:
    leaf, index, size, proof, root = _inclusion_args(vector)
    leaves = rfc_leaf_hashes()
    assert leaf == leaves[index] == leaf_hash(bytes.fromhex(vector["leaf_input_hex"]))
    _, store = build_store(leaves[:size])
    assert inclusion_proof(index, size, store.__getitem__) == proof
    verify_inclusion(leaf, index, size, proof, root)


@pytest.mark.parametrize("vector", CONSISTENCY, ids=_id)
def test_consistency_vectors(vector: dict[str, Any]) -> None:
    size1, size2, proof, root1, root2 = _consistency_args(vector)
    _, store = build_store(rfc_leaf_hashes()[:size2])
    assert consistency_proof(size1, size2, store.__getitem__) == proof
    verify_consistency(size1, size2, proof, root1, root2)


# --- Inclusion: every way to be wrong --------------------------------------------------------


@pytest.mark.parametrize("vector", INCLUSION, ids=_id)
def test_inclusion_rejects_any_flipped_bit(vector: dict[str, Any]) -> None:
    leaf, index, size, proof, root = _inclusion_args(vector)
    for position in range(len(proof)):
        for bit in range(HASH_SIZE * 8):
            altered = [*proof]
            altered[position] = _flip(proof[position], bit)
            with pytest.raises(InclusionProofError):
                verify_inclusion(leaf, index, size, altered, root)
    for bit in range(HASH_SIZE * 8):
        with pytest.raises(InclusionProofError):
            verify_inclusion(_flip(leaf, bit), index, size, proof, root)
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf, index, size, proof, _flip(root, bit))


@pytest.mark.parametrize("vector", INCLUSION, ids=_id)
def test_inclusion_rejects_extra_or_missing_hash(vector: dict[str, Any]) -> None:
    leaf, index, size, proof, root = _inclusion_args(vector)
    for altered in ([*proof, proof[-1] if proof else root], [root, *proof], proof[:-1]):
        if altered == proof:
            continue
        with pytest.raises(InclusionProofError, match="hashes"):
            verify_inclusion(leaf, index, size, altered, root)


@pytest.mark.parametrize("vector", INCLUSION, ids=_id)
def test_inclusion_rejects_wrong_index_or_size(vector: dict[str, Any]) -> None:
    leaf, index, size, proof, root = _inclusion_args(vector)
    for other in range(size + 2):
        if other != index:
            with pytest.raises(InclusionProofError):
                verify_inclusion(leaf, other, size, proof, root)
    # A proof binds the size only through the root: a checkpoint signs the pair (L8, L15).
    for other in range(index + 1, 9):
        if other != size:
            with pytest.raises(InclusionProofError):
                verify_inclusion(leaf, index, other, proof, rfc_root(other))


def test_inclusion_rejects_an_index_outside_the_tree() -> None:
    leaf = rfc_leaf_hashes()[0]
    with pytest.raises(InclusionProofError, match="not in a tree of size 1"):
        verify_inclusion(leaf, 1, 1, [], leaf)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, -1, 1, [], leaf)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(InclusionProofError, match="2\\^64"):
        verify_inclusion(leaf, 0, 2**64, [], leaf)


@pytest.mark.parametrize("size", [0, 1, 31, 33, 64])
def test_inclusion_rejects_hashes_that_are_not_32_bytes(size: int) -> None:
    leaf, index, tree_size, proof, root = _inclusion_args(INCLUSION[2])
    odd = bytes(size)
    with pytest.raises(HashSizeError, match="leaf hash"):
        verify_inclusion(odd, index, tree_size, proof, root)
    with pytest.raises(HashSizeError, match="root"):
        verify_inclusion(leaf, index, tree_size, proof, odd)
    with pytest.raises(HashSizeError, match="#1"):
        verify_inclusion(leaf, index, tree_size, [proof[0], odd, proof[2]], root)


# --- Consistency: every way to be wrong ------------------------------------------------------


def test_consistency_from_size_0_is_rejected() -> None:
    root8 = rfc_root(8)
    with pytest.raises(ConsistencyProofError, match="size 0"):
        verify_consistency(0, 8, [], EMPTY_ROOT, root8)
    with pytest.raises(ConsistencyProofError, match="size 0"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ConsistencyProofError, match="size 0"):
        verify_consistency(0, 8, [root8], EMPTY_ROOT, root8)
    with pytest.raises(ValueError, match="0 < size1"):
        consistency_proof_nodes(0, 8)


def test_consistency_between_equal_sizes() -> None:
    root6 = rfc_root(6)
    verify_consistency(6, 6, [], root6, root6)
    with pytest.raises(ConsistencyProofError, match="forked"):
        verify_consistency(6, 6, [], root6, rfc_root(7))
    with pytest.raises(ConsistencyProofError, match="must be empty"):
        verify_consistency(6, 6, [root6], root6, root6)
    assert consistency_proof(6, 6, NOTHING_STORED.__getitem__) == []


@pytest.mark.parametrize("vector", CONSISTENCY, ids=_id)
def test_consistency_rejects_any_flipped_bit(vector: dict[str, Any]) -> None:
    size1, size2, proof, root1, root2 = _consistency_args(vector)
    for position in range(len(proof)):
        for bit in range(HASH_SIZE * 8):
            altered = [*proof]
            altered[position] = _flip(proof[position], bit)
            with pytest.raises(ConsistencyProofError):
                verify_consistency(size1, size2, altered, root1, root2)
    for bit in range(HASH_SIZE * 8):
        with pytest.raises(ConsistencyProofError):
            verify_consistency(size1, size2, proof, _flip(root1, bit), root2)
        with pytest.raises(ConsistencyProofError):
            verify_consistency(size1, size2, proof, root1, _flip(root2, bit))


@pytest.mark.parametrize("vector", CONSISTENCY, ids=_id)
def test_consistency_rejects_extra_or_missing_hash(vector: dict[str, Any]) -> None:
    size1, size2, proof, root1, root2 = _consistency_args(vector)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, [*proof, root2], root1, root2)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, [root1, *proof], root1, root2)
    if proof:
        with pytest.raises(ConsistencyProofError, match="exactly"):
            verify_consistency(size1, size2, proof[:-1], root1, root2)
        with pytest.raises(ConsistencyProofError, match="exactly"):
            verify_consistency(size1, size2, proof[1:], root1, root2)


@pytest.mark.parametrize("vector", CONSISTENCY, ids=_id)
def test_consistency_rejects_swapped_roots_and_sizes(vector: dict[str, Any]) -> None:
    size1, size2, proof, root1, root2 = _consistency_args(vector)
    if root1 != root2:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(size1, size2, proof, root2, root1)
    if size1 != size2:
        with pytest.raises(ConsistencyProofError, match="never shrinks"):
            verify_consistency(size2, size1, proof, root2, root1)


@pytest.mark.parametrize("vector", CONSISTENCY, ids=_id)
def test_consistency_rejects_other_sizes(vector: dict[str, Any]) -> None:
    size1, size2, proof, root1, root2 = _consistency_args(vector)
    # Each size is checked with its own root, as a signed checkpoint pairs them (L9, L15).
    for other1 in range(1, size2 + 1):
        if other1 != size1:
            with pytest.raises(ConsistencyProofError):
                verify_consistency(other1, size2, proof, rfc_root(other1), root2)
    for other2 in range(size1, 9):
        if other2 != size2:
            with pytest.raises(ConsistencyProofError):
                verify_consistency(size1, other2, proof, root1, rfc_root(other2))


@pytest.mark.parametrize("size", [0, 31, 33])
def test_consistency_rejects_hashes_that_are_not_32_bytes(size: int) -> None:
    size1, size2, proof, root1, root2 = _consistency_args(CONSISTENCY[2])
    odd = bytes(size)
    with pytest.raises(HashSizeError, match="first root"):
        verify_consistency(size1, size2, proof, odd, root2)
    with pytest.raises(HashSizeError, match="second root"):
        verify_consistency(size1, size2, proof, root1, odd)
    with pytest.raises(HashSizeError, match="#2"):
        verify_consistency(size1, size2, [*proof[:2], odd], root1, root2)


def test_every_failure_is_a_ledger_integrity_error() -> None:
    for error in (HashSizeError, InclusionProofError, ConsistencyProofError):
        assert issubclass(error, LedgerIntegrityError)


# --- The stored shape (L4, L5, L6) -----------------------------------------------------------


def test_rows_hold_the_perfect_subtrees_each_leaf_completes() -> None:
    leaves = rfc_leaf_hashes()
    frontier = Frontier.empty()
    rows = [frontier.append(leaf) for leaf in leaves]
    assert [len(row) for row in rows] == [1, 2, 1, 3, 1, 2, 1, 4]
    assert rows[3] == [leaves[3], root_of(leaves[2:4]), root_of(leaves[0:4])]
    assert rows[7][3] == rfc_root(8)


def test_frontier_nodes_are_the_binary_decomposition() -> None:
    assert frontier_nodes(0) == []
    assert frontier_nodes(8) == [(3, 0)]
    assert frontier_nodes(13) == [(3, 0), (2, 2), (0, 12)]
    assert root_nodes(13) == frontier_nodes(13)
    assert len(frontier_nodes(2**64 - 1)) == 64


def test_proof_nodes_are_few_and_listed_up_front() -> None:
    assert inclusion_proof_nodes(5, 8) == [(0, 4), (1, 3), (2, 0)]
    # leaf 0 of 7: siblings leaf 1, leaves 2..3, and the right edge 4..6 = (1, 2) + (0, 6)
    assert inclusion_proof_nodes(0, 7) == [(0, 1), (1, 1), (1, 2), (0, 6)]
    assert consistency_proof_nodes(6, 8) == [(1, 2), (1, 3), (2, 0)]
    assert consistency_proof_nodes(5, 5) == []
    big = 2**40 + 2**20 + 5
    assert len(inclusion_proof_nodes(3, big)) <= 2 * big.bit_length()
    assert len(consistency_proof_nodes(2**20 + 3, big)) <= 2 * big.bit_length()


def test_generators_reject_impossible_arguments() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof_nodes(8, 8)
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(0, 0, NOTHING_STORED.__getitem__)
    with pytest.raises(ValueError, match="0 < size1 <= size2"):
        consistency_proof(5, 4, NOTHING_STORED.__getitem__)
    with pytest.raises(ValueError, match="2\\^64"):
        frontier_nodes(2**64)


def test_frontier_rejects_bad_hashes() -> None:
    with pytest.raises(HashSizeError, match="leaf hash"):
        Frontier.empty().append(b"\x00" * 31)
    _, store = build_store(rfc_leaf_hashes()[:6])
    store[(1, 2)] = b"short"
    with pytest.raises(HashSizeError, match=r"level 1, index 2"):
        Frontier.load(6, store.__getitem__)
    with pytest.raises(HashSizeError, match=r"level 1, index 2"):
        inclusion_proof(0, 6, store.__getitem__)


def test_loaded_frontier_keeps_appending_the_same_rows() -> None:
    leaves = rfc_leaf_hashes()
    _, store = build_store(leaves[:5])
    loaded = Frontier.load(5, store.__getitem__)
    fresh = Frontier.empty()
    rows = [fresh.append(leaf) for leaf in leaves]
    assert [loaded.append(leaf) for leaf in leaves[5:]] == rows[5:]
    assert loaded.root() == fresh.root() == rfc_root(8)
    assert "size=8" in repr(loaded)
