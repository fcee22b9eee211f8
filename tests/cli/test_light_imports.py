"""The SDK and `orbitq --help` stay light: no plotting, terminal or completion library is loaded
until a command that needs one runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("matplotlib", "PIL", "rich", "shtab", "tomlkit", "sqlmodel")


def loaded_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    )
    return list(eval(done.stdout))


def test_the_sdk_imports_no_matplotlib_nor_sqlmodel() -> None:
    assert loaded_after("import orbitq.clients, orbitq.clients.schedule") == []


def test_building_every_command_imports_none_of_them() -> None:
    # What `orbitq --help` does: every command module, client and broker side, registers.
    code = "from orbitq.clients.cli.main import build_parser\nbuild_parser().format_help()"
    assert loaded_after(code) == []


def test_drawing_loads_matplotlib_on_the_agg_canvas() -> None:
    code = (
        "from orbitq.clients.cli.pictures import new_figure\n"
        "figure = new_figure((400, 300))\n"
        "assert type(figure.canvas).__name__ == 'FigureCanvasAgg', type(figure.canvas)\n"
    )
    assert "matplotlib" in loaded_after(code)
