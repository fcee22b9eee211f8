"""orbitq.clients' public surface is pinned the way httpx pins its own
(tests/test_exported_members.py there): every public name of the package is in `__all__`, and
every name of `__all__` can be imported."""

from __future__ import annotations

import subprocess
import sys
import types

import orbitq.clients as clients

# Re-exported from orbitq.ledger, so that `except LedgerIntegrityError` needs one import.
FOREIGN = {"LedgerIntegrityError": "orbitq.ledger.errors"}


def test_every_public_name_is_exported() -> None:
    public = {
        name
        for name, member in vars(clients).items()
        # Submodules (errors, models, cli, ...) become attributes as they are imported.
        if not name.startswith("_") and not isinstance(member, types.ModuleType)
    }
    assert public == set(clients.__all__)
    assert len(clients.__all__) == len(set(clients.__all__)), "duplicate names in __all__"


def test_every_exported_name_is_importable_and_from_the_sdk() -> None:
    names = ", ".join(clients.__all__)
    code = f"from orbitq.clients import {names}\nprint(len([{names}]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(len(clients.__all__))
    for name in clients.__all__:
        module = getattr(clients, name).__module__
        assert module == FOREIGN.get(name) or module.startswith("orbitq.clients."), (name, module)
