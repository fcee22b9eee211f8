"""`orbitq ... | head`: a reader that goes away ends the command quietly (exit 141, like a
Unix tool killed by SIGPIPE), never with a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orbitq.services.orbits import bundled_path

ORBITQ = Path(sys.executable).parent / "orbitq"


def test_a_closed_pipe_ends_the_command_without_a_traceback(tmp_path: Path) -> None:
    # A day of ten satellites' contacts, computed offline, is about 100 kB: more than a pipe
    # holds, so the command is still writing when the reader closes after the first bytes.
    lines = bundled_path("starlink").read_text(encoding="ascii").splitlines()
    tle = tmp_path / "ten.tle"
    tle.write_text("\n".join(lines[:30]) + "\n", encoding="ascii")
    command = [
        str(ORBITQ),
        "contacts",
        "compute",
        "--tle",
        str(tle),
        "--stations",
        str(bundled_path("ground-stations")),
        "--start",
        "2025-12-06T00:00:00Z",
        "--hours",
        "24",
        "--json",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.read(16)
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert "Traceback" not in errors
    assert "BrokenPipeError" not in errors
