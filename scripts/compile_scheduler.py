"""Compile the scheduler's hot modules with mypyc, beside their sources (`make compile`).

The scheduler's cost is Python interpretation of plain typed integer code: timeline searches,
link searches and the fit chain (docs/performance.md, "The scheduler"). mypyc compiles the
modules listed in `orbitq.services.scheduler.native.COMPILED_MODULES` into one group of
extension modules that Python imports instead of the `.py` files beside them; placements are
the same, only faster. Optional: without a build the source runs.

    python scripts/compile_scheduler.py           build and install the extension modules
    python scripts/compile_scheduler.py --clean   remove them (the source runs again)
    python scripts/compile_scheduler.py --link    link an existing build into the editable
                                                  install again (`make venv` runs it)

How: mypyc needs the modules under their import names, so the repository's package folders are
copied into a temporary `orbitq/` tree; the group is named `orbitq.services.scheduler._compiled`
so its runtime library lives inside the package, not at the top level. The built files, and a
stamp of each module's source digest (`_compiled.json`, which `native.check()` compares at
import), are copied into services/scheduler/ and linked into the editable install's link tree
(strict editable installs link each file, and know nothing of files added later). Needs a C
compiler and mypy (a dev dependency). Not shipped in the wheel.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "services" / "scheduler"
# The repository folder of each top-level package folder mypy must see to type the modules.
PACKAGES = {
    "services": "services",
    "ledger": "ledger",
    "clients": "clients",
    "v1": "proto/orbitq/v1",
}
GROUP = "orbitq.services.scheduler._compiled"
FILES_MAX = 256  # built files copied (a guard on the copy loops)


def _native() -> tuple[tuple[str, ...], str, str]:
    """The guard module's constants, loaded from its file: importing the package would run
    its check, which refuses a stale build (the one this script is about to replace)."""
    spec = importlib.util.spec_from_file_location("_orbitq_native", SOURCE / "native.py")
    assert spec is not None
    assert spec.loader is not None
    native = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(native)
    modules: tuple[str, ...] = native.COMPILED_MODULES
    stamp: str = native.STAMP
    shared: str = native.SHARED_LIBRARY
    return modules, stamp, shared


def _built_files(modules: tuple[str, ...], shared: str) -> list[Path]:
    """Every extension module and runtime library of a build in services/scheduler/."""
    names = [*modules, shared]
    found = []
    for name in names:
        base = SOURCE.joinpath(*name.split("."))
        for suffix in EXTENSION_SUFFIXES:
            path = base.with_name(base.name + suffix)
            if path.exists():
                found.append(path)
    return found


def _link_trees() -> list[Path]:
    """The package's folders other than the source (an editable install's link tree)."""
    spec = importlib.util.find_spec("orbitq.services")
    if spec is None or spec.submodule_search_locations is None:
        return []
    trees = []
    for location in spec.submodule_search_locations:
        tree = Path(location) / "scheduler"
        if tree.is_dir() and tree.resolve() != SOURCE.resolve():
            trees.append(tree)
    return trees


def clean(modules: tuple[str, ...], stamp: str, shared: str) -> None:
    for path in [*_built_files(modules, shared), SOURCE / stamp]:
        relative = path.relative_to(SOURCE)
        for tree in _link_trees():
            (tree / relative).unlink(missing_ok=True)
        path.unlink(missing_ok=True)


def build(modules: tuple[str, ...], stamp: str, shared: str) -> None:
    from mypyc.build import mypycify  # dev dependency: only this script needs it
    from setuptools import setup  # type: ignore[import-untyped]

    clean(modules, stamp, shared)
    digests = {}
    with tempfile.TemporaryDirectory(prefix="orbitq-mypyc-") as temporary:
        work = Path(temporary)
        for package, folder in PACKAGES.items():
            shutil.copytree(
                ROOT / folder,
                work / "orbitq" / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"),
            )
        paths = [
            str(Path("orbitq/services/scheduler", *module.split("."))) + ".py" for module in modules
        ]
        for module, relative in zip(modules, paths, strict=True):
            digests[module] = hashlib.sha256((work / relative).read_bytes()).hexdigest()
        previous = Path.cwd()
        os.chdir(work)
        os.environ["MYPYPATH"] = str(work)
        try:
            extensions = mypycify(
                ["--explicit-package-bases", "--ignore-missing-imports", *paths],
                opt_level="3",
                group_name=GROUP,
            )
            setup(
                name="orbitq-scheduler-compiled",
                ext_modules=extensions,
                script_args=["build_ext", "--build-lib", "lib", "--build-temp", "temp"],
            )
        finally:
            os.chdir(previous)
        output = work / "lib" / "orbitq" / "services" / "scheduler"
        built = sorted(path for path in output.rglob("*") if path.is_file())
        assert len(built) <= FILES_MAX
        for built_file in built:
            shutil.copy2(built_file, SOURCE / built_file.relative_to(output))
    (SOURCE / stamp).write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
    link(modules, stamp, shared)


def link(modules: tuple[str, ...], stamp: str, shared: str) -> None:
    """Link an existing build into the editable install's tree (a reinstall rebuilds the tree
    without it); nothing to do without a build."""
    built = _built_files(modules, shared)
    if not built:
        return
    for installed in [*built, SOURCE / stamp]:
        for tree in _link_trees():
            target = tree / installed.relative_to(SOURCE)
            target.unlink(missing_ok=True)
            target.symlink_to(installed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument(
        "--link", action="store_true", help="link an existing build into the editable install"
    )
    args = parser.parse_args()
    modules, stamp, shared = _native()
    if args.clean:
        clean(modules, stamp, shared)
        return
    if args.link:
        link(modules, stamp, shared)
        return
    build(modules, stamp, shared)
    print(f"compiled {len(modules)} scheduler modules into {SOURCE}")


if __name__ == "__main__":
    main()
