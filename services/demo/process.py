"""A throw-away broker as a real process: `orbitq init`, `orbitq serve`, SIGTERM on the way out."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orbitq.clients.cli.registry import CommandError

SHUTDOWN_SECONDS_MAX = 30.0


@dataclass
class RunningBroker:
    target: str
    operator_key: str
    verifier_key: str
    data_dir: Path
    # time.monotonic() just before `orbitq init` (a shifted clock's anchor is set a moment
    # later, so the broker's time is never behind an estimate made from this).
    started: float
    # The broker's clock spec as `orbitq init` anchored it in config.toml: the node agents run
    # on exactly this clock.
    clock: str
    # The broker's exit status once stopped (0: a clean shutdown).
    exit_code: int | None = None


def _orbitq(*args: str) -> list[str]:
    return [sys.executable, "-m", "orbitq.clients.cli.main", *args]


@contextmanager
def running_broker(
    directory: Path,
    *,
    init_flags: tuple[str, ...] = (),
    config_lines: tuple[str, ...] = (),
) -> Iterator[RunningBroker]:
    """`orbitq init` + `orbitq serve` in `directory` (extra lines appended to config.toml)."""
    data_dir = directory / "broker"
    started = time.monotonic()
    # Our own interpreter and module: no untrusted input reaches the command line.
    init = subprocess.run(  # noqa: S603
        _orbitq(
            "init",
            "--data-dir",
            str(data_dir),
            "--origin",
            "demo.orbitq.local/ledger",
            "--json",
            *init_flags,
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        raise CommandError(f"orbitq init failed: {init.stderr.strip()}")
    identity = json.loads(init.stdout)
    if config_lines:
        with (data_dir / "config.toml").open("a") as config:
            config.write("\n".join(config_lines) + "\n")
    log_path = directory / "broker.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(  # noqa: S603
            _orbitq("serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            if "listening on" not in first:
                raise CommandError(f"the broker did not start; its log is {log_path}")
            broker = RunningBroker(
                target=first.strip().rsplit(" ", 1)[-1],
                operator_key=identity["operator_api_key"],
                verifier_key=identity["verifier_key"],
                data_dir=data_dir,
                started=started,
                clock=str(
                    tomllib.loads((data_dir / "config.toml").read_text()).get("clock", "system")
                ),
            )
            yield broker
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(SHUTDOWN_SECONDS_MAX)
            except subprocess.TimeoutExpired:
                server.kill()
                code = server.wait()
    broker.exit_code = code
