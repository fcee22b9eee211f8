"""The public surface of orbitq.services.scheduling is exactly what __all__ says, and the
dependency rule of its package docstring holds: scheduling imports requests and the scheduler;
requests never imports scheduling; the scheduler imports nothing else of orbitq.services."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import orbitq.services.requests
import orbitq.services.scheduler
import orbitq.services.scheduling as scheduling

SERVICES = "orbitq.services"


def test_public_surface() -> None:
    assert sorted(scheduling.__all__) == [
        "AdvanceReport",
        "ClockCompletion",
        "ClockStart",
        "Completion",
        "CycleReport",
        "LeaderLock",
        "PulledTickets",
        "ReceiptDeadline",
        "SchedulingLoop",
        "Start",
        "TicketStart",
        "displace_guard_seconds",
    ]
    for name in scheduling.__all__:
        assert hasattr(scheduling, name), name


def imported_modules(package: Path) -> dict[str, set[str]]:
    """Per module file of `package` (and its subpackages), every absolute module it imports,
    including imports under TYPE_CHECKING or inside functions."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(package))] = names
    return found


def folder(module: object) -> Path:
    return Path(str(getattr(module, "__file__", ""))).parent


def test_the_scheduler_imports_nothing_else_of_the_services() -> None:
    imports = imported_modules(folder(orbitq.services.scheduler))
    assert "runtime.py" in imports
    assert "plugins/uplink.py" in imports
    for module, names in imports.items():
        wrong = {
            name
            for name in names
            if name.startswith(f"{SERVICES}.") and not name.startswith(f"{SERVICES}.scheduler.")
        }
        assert not wrong, f"scheduler/{module} imports {sorted(wrong)}"


def test_requests_never_import_the_scheduling_loop() -> None:
    imports = imported_modules(folder(orbitq.services.requests))
    assert "service.py" in imports
    for module, names in imports.items():
        wrong = {name for name in names if name.startswith(f"{SERVICES}.scheduling")}
        assert not wrong, f"requests/{module} imports {sorted(wrong)}"


def test_scheduling_depends_on_requests_and_the_scheduler_not_the_reverse() -> None:
    imports = imported_modules(folder(scheduling))
    everything = set().union(*imports.values())
    assert any(name.startswith(f"{SERVICES}.requests") for name in everything)
    assert any(name.startswith(f"{SERVICES}.scheduler.") for name in everything)
    probe = (
        "import sys, orbitq.services.requests;"
        " print(sorted(m for m in sys.modules if m.startswith('orbitq.services.scheduling')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert loaded == "[]"
