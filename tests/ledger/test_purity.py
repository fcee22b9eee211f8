"""The ledger's pure modules load no database code: only orbitq.ledger.store does I/O.

Each module is imported alone in a fresh interpreter (sys.modules starts empty of orbitq), so an
import that pulls in SQLAlchemy or SQLModel through any chain of modules shows up here. The
agent formats (tickets, receipts, their envelope) load less still: no gRPC and no protobuf
either, only cbor2 and cryptography, so a tenant's verifier needs nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE_MODULES = (
    "orbitq.ledger.engine",
    "orbitq.ledger.model",
    "orbitq.ledger.merkle",
    "orbitq.ledger.note",
    "orbitq.ledger.checkpoint",
    "orbitq.ledger.audit",
    "orbitq.ledger.invariants",
    "orbitq.ledger.entries",
    "orbitq.ledger.errors",
    "orbitq.ledger.cose",
    "orbitq.ledger.tickets",
    "orbitq.ledger.receipts",
)
AGENT_FORMAT_MODULES = ("orbitq.ledger.cose", "orbitq.ledger.tickets", "orbitq.ledger.receipts")
DATABASE_PACKAGES = ("sqlalchemy", "sqlmodel")
RPC_PACKAGES = ("grpc", "google")


def _database_modules_loaded_by(module: str) -> list[str]:
    return _loaded_by(module, DATABASE_PACKAGES)


def _loaded_by(module: str, packages: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"loaded = [m for m in sys.modules if m.split('.')[0] in {packages!r}]\n"
        "print(json.dumps(sorted(loaded)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("module", PURE_MODULES)
def test_a_pure_module_loads_no_database_code(module: str) -> None:
    assert _database_modules_loaded_by(module) == []


@pytest.mark.parametrize("module", AGENT_FORMAT_MODULES)
def test_an_agent_format_module_loads_no_rpc_code(module: str) -> None:
    assert _loaded_by(module, RPC_PACKAGES) == []


def test_the_rpc_check_can_fail() -> None:
    assert "google.protobuf" in _loaded_by("orbitq.ledger.entries", RPC_PACKAGES)


def test_the_store_is_where_the_database_code_is() -> None:
    """The check above can fail: the I/O package does load SQLAlchemy."""
    assert "sqlalchemy" in _database_modules_loaded_by("orbitq.ledger.store")
