"""The wheel installs exactly one top-level name, `orbitq`, and no package folder is forgotten."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def _setuptools() -> dict[str, object]:
    tool = _pyproject()["tool"]
    assert isinstance(tool, dict)
    config = tool["setuptools"]
    assert isinstance(config, dict)
    return config


def _folder_of(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools looks for `package`: the longest mapped prefix, then sub-folders."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return ROOT / package_dir[prefix] / Path(*parts[cut:])
    raise AssertionError(f"{package} is under no package-dir mapping")


def test_every_package_folder_is_listed() -> None:
    config = _setuptools()
    package_dir = config["package-dir"]
    listed = config["packages"]
    assert isinstance(package_dir, dict)
    assert isinstance(listed, list)
    expected: set[str] = set()
    for package, folder in package_dir.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base)
            expected.add(".".join([package, *relative.parts]))
    missing = sorted(expected - set(listed))
    assert not missing, f"package folders missing from pyproject.toml [tool.setuptools]: {missing}"
    for package in listed:
        assert (_folder_of(package, package_dir) / "__init__.py").is_file(), package


def test_wheel_has_only_the_orbitq_top_level(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("orbitq-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_levels = {name.split("/")[0] for name in names}
    dist_info = {name for name in top_levels if name.endswith(".dist-info")}
    assert top_levels - dist_info == {"orbitq"}
    assert "orbitq/__init__.py" not in names, "orbitq must stay a PEP 420 namespace"
    for package in ("ledger", "services", "clients", "v1"):
        assert f"orbitq/{package}/__init__.py" in names
    assert "orbitq/v1/quota_pb2.pyi" in names
    assert "orbitq/v1/py.typed" in names
