"""The compiled-build guard (orbitq.services.scheduler.native): a compiled module whose source
changed since its build is refused at import, and without builds the source runs."""

from __future__ import annotations

import hashlib
import json
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from orbitq.services.scheduler import native


def test_every_compiled_module_has_its_source() -> None:
    root = Path(native.__file__).parent
    for module in native.COMPILED_MODULES:
        assert root.joinpath(*module.split(".")).with_suffix(".py").is_file(), module
    assert set(native.compiled()) <= set(native.COMPILED_MODULES)


def _tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "timeline.py").write_text("X = 1\n")
    (tmp_path / "plugins" / "uplink.py").write_text("Y = 2\n")
    monkeypatch.setattr(native, "_root", lambda: tmp_path)
    monkeypatch.setattr(native, "COMPILED_MODULES", ("timeline", "plugins.uplink"))
    return tmp_path


def _stamp(root: Path, digests: dict[str, str]) -> None:
    (root / native.STAMP).write_text(json.dumps(digests))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_build_runs_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, monkeypatch)
    assert native.compiled() == ()
    native.check()  # nothing compiled: nothing to refuse, no stamp needed


def test_a_build_matching_its_source_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path, monkeypatch)
    (root / "plugins" / f"uplink{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    _stamp(root, {"plugins.uplink": _digest(root / "plugins" / "uplink.py")})
    assert native.compiled() == ("plugins.uplink",)
    native.check()


def test_a_source_edited_after_its_build_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path, monkeypatch)
    (root / f"timeline{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    _stamp(root, {"timeline": _digest(root / "timeline.py")})
    native.check()
    (root / "timeline.py").write_text("X = 2\n")
    with pytest.raises(native.StaleCompiledModulesError, match="timeline"):
        native.check()


def test_a_build_without_its_stamp_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path, monkeypatch)
    (root / f"timeline{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    with pytest.raises(native.StaleCompiledModulesError):
        native.check()
