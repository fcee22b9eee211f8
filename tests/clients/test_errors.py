"""One root for every exception of the SDK, and a tree that old `except` clauses still match.

(The CLI keeps its own exit code for an integrity failure, now also an OrbitqError: the tampered
broker of tests/integration/test_ledger_cli.py checks it end to end.)"""

from __future__ import annotations

import grpc
import pytest

import orbitq.clients as clients
import orbitq.ledger.errors
from orbitq.clients import (
    BrokerCallError,
    BrokerIntegrityError,
    ConfigurationError,
    EntryVerificationError,
    HistoryRewrittenError,
    LedgerIntegrityError,
    OrbitqError,
    UnavailableError,
)

EXPORTED_EXCEPTIONS = [
    member
    for name in clients.__all__
    if isinstance(member := getattr(clients, name), type) and issubclass(member, BaseException)
]


def test_every_exported_exception_descends_from_orbitq_error() -> None:
    assert len(EXPORTED_EXCEPTIONS) > 15
    outside = [
        error.__name__ for error in EXPORTED_EXCEPTIONS if not issubclass(error, OrbitqError)
    ]
    # The one exception is orbitq.ledger's own root, re-exported so that catching it needs no
    # other import; the SDK never raises it bare (see the next test).
    assert outside == ["LedgerIntegrityError"]
    assert LedgerIntegrityError is orbitq.ledger.errors.LedgerIntegrityError


def test_every_integrity_failure_is_caught_by_both_roots() -> None:
    sdk_integrity = [e for e in EXPORTED_EXCEPTIONS if issubclass(e, LedgerIntegrityError)]
    assert set(sdk_integrity) - {LedgerIntegrityError} == {
        e for e in EXPORTED_EXCEPTIONS if issubclass(e, BrokerIntegrityError)
    }
    for raised in (
        HistoryRewrittenError("orbitq.test/ledger", "the log shrank"),
        EntryVerificationError("orbitq.test/ledger", 7, "entry 7: leaf hash differs"),
    ):
        with pytest.raises(OrbitqError):
            raise raised
        with pytest.raises(LedgerIntegrityError):
            raise raised


@pytest.mark.parametrize(
    "error",
    [
        UnavailableError(grpc.StatusCode.UNAVAILABLE, "the broker is stopping"),
        ConfigurationError("no API key"),
    ],
)
def test_other_failures_are_not_integrity_failures(error: OrbitqError) -> None:
    assert isinstance(error, BrokerCallError | ConfigurationError)
    assert not isinstance(error, LedgerIntegrityError)
