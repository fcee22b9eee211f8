"""Loads the ledger test vectors of tests/data/ledger-vectors (sources in its README.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from orbitq.ledger import Frontier, leaf_hash

VECTORS = Path(__file__).resolve().parent.parent / "data" / "ledger-vectors"


@cache
def load(name: str) -> dict[str, Any]:
    with (VECTORS / name).open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def rfc6962() -> dict[str, Any]:
    return load("rfc6962_vectors.json")


def c2sp_note() -> dict[str, Any]:
    return load("signed_note_ed25519_vector.json")


def go_note() -> dict[str, Any]:
    return load("go_sumdb_note_vectors.json")


def rfc_leaf_hashes() -> list[bytes]:
    return [leaf_hash(bytes.fromhex(data)) for data in rfc6962()["leaf_inputs_hex"]]


def rfc_root(size: int) -> bytes:
    return bytes.fromhex(rfc6962()["root_by_tree_size_hex"][str(size)])


def build_store(leaves: list[bytes]) -> tuple[Frontier, dict[tuple[int, int], bytes]]:
    """Append every leaf; keep each row as the broker does: (level, index) -> hash (L4)."""
    frontier = Frontier.empty()
    store: dict[tuple[int, int], bytes] = {}
    for index, leaf in enumerate(leaves):
        for level, value in enumerate(frontier.append(leaf)):
            store[(level, ((index + 1) >> level) - 1)] = value
    return frontier, store
