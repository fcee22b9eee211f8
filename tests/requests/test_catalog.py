"""The catalog of the world Submit validates against: read once while fresh, read again after a
change in this process, and never kept when a change was announced while it was being read."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orbitq.services.constellation import NodeRecord
from tests.conftest import BrokerHandle


def _counting_reads(
    monkeypatch: pytest.MonkeyPatch,
    handle: BrokerHandle,
    during_read: Callable[[], object] | None = None,
) -> list[int]:
    """Count the catalog's reads of the nodes; `during_read()` runs inside each read."""
    constellation = handle.broker.constellation
    real = constellation.nodes
    reads: list[int] = []

    def nodes() -> list[NodeRecord]:
        reads.append(1)
        if during_read is not None:
            during_read()
        return real()

    monkeypatch.setattr(constellation, "nodes", nodes)
    return reads


def test_a_fresh_catalog_is_read_once(
    broker: BrokerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _counting_reads(monkeypatch, broker)
    requests = broker.broker.requests
    first = requests.catalog()
    assert requests.catalog() is first
    assert len(reads) == 1
    requests.world_changed()
    assert requests.catalog() is not first
    assert len(reads) == 2


def test_a_catalog_read_across_a_change_is_not_kept(
    broker: BrokerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = broker.broker.requests
    changes = [requests.world_changed]  # announced once, during the first read only

    def change_once() -> None:
        if changes:
            changes.pop()()

    reads = _counting_reads(monkeypatch, broker, change_once)
    requests.catalog()
    requests.catalog()
    assert len(reads) == 2  # the first read may miss the change: read again
    requests.catalog()
    assert len(reads) == 2  # the second was kept
