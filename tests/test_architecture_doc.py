"""docs/architecture.md's table of parts names every package folder, and only folders that exist.

A new package folder without its row, or a row left behind by a move, fails here: the table is
how a new engineer finds where a job lives, so it must not drift from the tree.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_packaging import _folder_of, _setuptools

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# Folders with code that ships nowhere (no package), but that the table names too.
EXTRA_FOLDERS = frozenset({"scripts/"})


def _parts_table() -> str:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    start = text.index("## The parts")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _folders_named(table: str) -> set[str]:
    """Every `folder/` in the table's second column."""
    named: set[str] = set()
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or set(cells[2].strip()) <= {"-", " "}:
            continue
        named.update(re.findall(r"`([a-z0-9_/]+/)`", cells[2]))
    return named


def _package_folders() -> set[str]:
    config = _setuptools()
    package_dir = config["package-dir"]
    listed = config["packages"]
    assert isinstance(package_dir, dict)
    assert isinstance(listed, list)
    return {
        _folder_of(package, package_dir).relative_to(ROOT).as_posix() + "/" for package in listed
    }


def test_every_package_folder_has_a_row() -> None:
    named = _folders_named(_parts_table())
    missing = sorted(_package_folders() - named)
    assert not missing, f"docs/architecture.md's parts table lacks rows for {missing}"


def test_every_row_names_a_folder_that_exists() -> None:
    named = _folders_named(_parts_table())
    assert named, "the parts table names no folders"
    stale = sorted(f for f in named if not (ROOT / f).is_dir())
    assert not stale, f"the parts table names folders that do not exist: {stale}"
    unknown = sorted(named - _package_folders() - EXTRA_FOLDERS)
    assert not unknown, f"the parts table names folders that are not packages: {unknown}"
