"""Run `orbitq` in a child process with stderr on a pseudo-terminal (as a person at a terminal
has it) or on a pipe (as scripts, CI and redirections have it)."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

TERMINAL_COLUMNS = 120
TERMINAL_ROWS = 40
RUN_SECONDS_MAX = 240
READ_BYTES = 65536
# Variables that would make rich or the CLI behave differently from a plain terminal or pipe.
_NEUTRALISED = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "COLUMNS", "LINES", "ORBITQ_PROFILE")


@dataclass(frozen=True)
class Run:
    code: int
    stdout: bytes
    stderr: bytes


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NEUTRALISED}
    env.update(TERM="xterm-256color", ORBITQ_CONFIG=str(tmp_path / "no-config.toml"), **extra)
    return env


def orbitq(*argv: str) -> list[str]:
    return [sys.executable, "-m", "orbitq.clients.cli.main", *argv]


def on_terminal(argv: list[str], env: dict[str, str], tmp_path: Path) -> Run:
    """stderr on a pseudo-terminal of TERMINAL_COLUMNS; stdout to a file (it stays a script's)."""
    master, slave = pty.openpty()
    fcntl.ioctl(
        slave, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL_ROWS, TERMINAL_COLUMNS, 0, 0)
    )
    out_path = tmp_path / "stdout.bin"
    with out_path.open("wb") as out:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=slave, env=env, close_fds=True
        )
    os.close(slave)
    screen = bytearray()
    try:
        # Bounded: the child's stderr ends (EIO on Linux) when it exits.
        while True:
            try:
                chunk = os.read(master, READ_BYTES)
            except OSError as error:
                if error.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(master)
    code = child.wait(timeout=RUN_SECONDS_MAX)
    return Run(code, out_path.read_bytes(), bytes(screen))


def on_pipes(argv: list[str], env: dict[str, str]) -> Run:
    done = subprocess.run(
        argv,
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=RUN_SECONDS_MAX,
    )
    return Run(done.returncode, done.stdout, done.stderr)
