"""Fixtures of the ledger tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ledger.evidence_history import EvidenceLedger, build


@pytest.fixture
def evidence_ledger(db_url: str) -> Iterator[EvidenceLedger]:
    """A ledger with a node key and a receipt-backed settlement (tests/ledger/evidence_history)."""
    ledger, engine = build(db_url)
    try:
        yield ledger
    finally:
        engine.dispose()
