"""The ledger's pure modules load no database code: only orbitq.ledger.store does I/O.

Each module is imported alone in a fresh interpreter (sys.modules starts empty of orbitq), so an
import that pulls in SQLAlchemy or SQLModel through any chain of modules shows up here.
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
)
DATABASE_PACKAGES = ("sqlalchemy", "sqlmodel")


def _database_modules_loaded_by(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"loaded = [m for m in sys.modules if m.split('.')[0] in {DATABASE_PACKAGES!r}]\n"
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


def test_the_store_is_where_the_database_code_is() -> None:
    """The check above can fail: the I/O package does load SQLAlchemy."""
    assert "sqlalchemy" in _database_modules_loaded_by("orbitq.ledger.store")
