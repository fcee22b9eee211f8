"""Whether the scheduler's hot modules run compiled (mypyc), and a guard against stale builds.

Owns: `COMPILED_MODULES` (the modules scripts/compile_scheduler.py compiles: the fit chain's
timelines, link searches, world, framework, runtime and plugins), the stamp the script writes
beside them (`_compiled.json`: each module's source SHA-256 at compile time), `compiled()`
(which of them Python will load compiled) and `check()`, which the package runs before it
imports any compiled module and which refuses to let a compiled module stand in for a source
file edited since it was built: an extension module is imported before the `.py` beside it, so
a stale one would run old code silently.

Does not own: building them (scripts/compile_scheduler.py, `make compile`) or any scheduling.
The compiled modules place exactly as the source does (same code, same integer arithmetic);
only the speed differs (docs/performance.md, "The scheduler").
"""

from __future__ import annotations

import hashlib
import json
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

PACKAGE = "orbitq.services.scheduler"
STAMP = "_compiled.json"
SHARED_LIBRARY = "_compiled__mypyc"  # mypyc's runtime library for the group (its group name)
COMPILED_MODULES = (
    "timeline",
    "links",
    "world",
    "framework",
    "runtime",
    "cycle",
    "preemption",
    "repack",
    "ordering",
    "plugins.uplink",
    "plugins.downlink",
    "plugins.capacity",
    "plugins.storage_hold",
    "plugins.just_in_time",
    "plugins.station_antennas",
    "plugins.station_selector",
    "plugins.packing",
    "plugins.earliest_completion",
    "plugins.node_state",
    "plugins.node_resources",
    "plugins.node_selector",
    "plugins.in_time",
)


class StaleCompiledModulesError(ImportError):
    """A compiled module is older than its source: rebuild (`make compile`) or remove the
    builds (`make clean-compiled`)."""


def _root() -> Path:
    return Path(__file__).parent


def _extension(module: str) -> Path | None:
    base = _root().joinpath(*module.split("."))
    for suffix in EXTENSION_SUFFIXES:
        path = base.with_name(base.name + suffix)
        if path.exists():
            return path
    return None


def source_digest(module: str) -> str:
    path = _root().joinpath(*module.split(".")).with_suffix(".py")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled() -> tuple[str, ...]:
    """The modules Python loads compiled (an extension module beside the source)."""
    return tuple(module for module in COMPILED_MODULES if _extension(module) is not None)


def check() -> None:
    """Raise `StaleCompiledModulesError` if a compiled module's source changed since its build.
    Runs once when the package is imported, before any compiled module is: ~1 ms."""
    present = compiled()
    if not present:
        return
    stamp = _root() / STAMP
    built: dict[str, str] = json.loads(stamp.read_text()) if stamp.exists() else {}
    stale = [module for module in present if built.get(module) != source_digest(module)]
    if stale:
        raise StaleCompiledModulesError(
            f"compiled scheduler modules older than their source: {', '.join(stale)}; "
            "run `make compile` again, or `make clean-compiled` to run the source"
        )
