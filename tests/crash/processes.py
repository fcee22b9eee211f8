"""Real `orbitq` processes for the crash and replica suites: a data directory made by
`orbitq init`, brokers started with `orbitq serve` (and killed with SIGKILL), `orbitq ledger
verify`, and the checks both suites make once every broker has stopped.

Owns: making a data directory, starting, killing and stopping broker processes with bounded
waits (never a sleep: every wait polls a condition against a deadline), their logs, and
`check_after` — the durability facts that must hold on the data a crashed broker left: the
ledger's invariants (balances equal a replay of the transfers), no reservation that a live
request does not own, no request left SUBMITTED, and `orbitq ledger verify` passing.

Does not own: the workloads the suites run against the brokers (their test modules).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from orbitq.clients.cli.main import main as cli_main
from orbitq.ledger.model import Kind, SystemAccount
from orbitq.services.broker import Broker
from orbitq.services.broker import init_data_dir as broker_init
from orbitq.services.config import load_config
from orbitq.services.requests import LIVE_STATES, RequestState
from orbitq.services.requests.reservations import amount_of
from orbitq.services.requests.store import new_request_id
from orbitq.services.scheduler import Cost

# The bundled TLE snapshot's epoch is near 2025-12-06: the brokers' clock runs from there, so
# the contact plan they compute is accurate.
CLOCK = "shifted:2025-12-06T00:00:00Z"
START_SECONDS = 60.0
STOP_SECONDS = 30.0


def orbitq(*args: str) -> list[str]:
    return [sys.executable, "-m", "orbitq.clients.cli.main", *args]


def database_of(db_url: str) -> str:
    """ "sqlite" or "postgresql", for messages and seeds."""
    return db_url.partition(":")[0].partition("+")[0]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    pause = 0.01
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        threading.Event().wait(pause)  # a bounded poll interval, not synchronisation
        pause = min(pause * 2, 0.2)


@dataclass(frozen=True)
class DataDir:
    path: Path
    operator_key: str

    def config(self) -> list[str]:
        return ["--data-dir", str(self.path)]


def init_data_dir(
    path: Path, db_url: str, *, settings: Mapping[str, str | float] | None = None
) -> DataDir:
    """What `orbitq init` makes (in-process: a subprocess would only add its start-up time),
    on `db_url` (SQLite file or PostgreSQL schema), with settlement "plan" (the clock starts
    and completes placed work: no node agents) and `settings` added to config.toml."""
    result = broker_init(path, origin="orbitq.test/crash", db_url=db_url, clock_spec=CLOCK)
    lines = ['settlement = "plan"']
    for key, value in (settings or {}).items():
        lines.append(f"{key} = {json.dumps(value)}")
    with (path / "config.toml").open("a", encoding="utf-8") as config:
        config.write("\n".join(lines) + "\n")
    return DataDir(path, result.operator_key.token)


class Serving:
    """One `orbitq serve` process; its log (stderr) is appended to `log`."""

    def __init__(self, data: DataDir, log: Path, crash_at: str = "") -> None:
        env = {k: v for k, v in os.environ.items() if k != "ORBITQ_CRASH_AT"}
        if crash_at:
            env["ORBITQ_CRASH_AT"] = crash_at
        self.log = log
        self.crash_at = crash_at
        self._mark = log.stat().st_size if log.exists() else 0
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"--- serve (ORBITQ_CRASH_AT={crash_at or '-'})\n")
        self.process = subprocess.Popen(
            orbitq("serve", *data.config(), "--listen", "127.0.0.1:0", "--log-level", "INFO"),
            stdout=subprocess.PIPE,
            stderr=log.open("a", encoding="utf-8"),
            text=True,
            env=env,
        )
        self.target = self._listening()

    def _listening(self) -> str:
        assert self.process.stdout is not None
        found: list[str] = []
        reader = threading.Thread(
            target=lambda: found.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(START_SECONDS)
        line = found[0] if found else ""
        assert "listening on" in line, f"the broker did not start:\n{self.new_log()}"
        return line.strip().rsplit(" ", 1)[-1]

    def new_log(self) -> str:
        """What this process logged (the log is shared by the data directory's processes)."""
        with self.log.open(encoding="utf-8") as handle:
            handle.seek(self._mark)
            return handle.read()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """kill -9."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_SECONDS)
        self._close()

    def stop(self) -> None:
        """SIGTERM: the broker must stop cleanly (exit 0)."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(STOP_SECONDS)
        self._close()
        assert code == 0, f"the broker exited {code}:\n{self.new_log()}"

    def _close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()


def check_log(log: Path) -> None:
    """No traceback and nothing logged as an error by any process of the data directory."""
    text = log.read_text(encoding="utf-8")
    bad = [
        line
        for line in text.splitlines()
        if "Traceback" in line or " ERROR " in line or " CRITICAL " in line
    ]
    assert not bad, f"{log.name}: " + "\n".join(bad[:10])


def ledger_verify(data: DataDir) -> None:
    """`orbitq ledger verify` (its `main`, in this process: a subprocess would only add its
    start-up time) must exit 0."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["ledger", "verify", *data.config()])
    assert code == 0, out.getvalue() + err.getvalue()


def plant_orphan(data: DataDir, tenant: str) -> str:
    """With every broker stopped: a reservation for a request that is never stored, made
    through the real ledger writer — what a broker of the earlier version left when killed
    between reserving and storing. Returns the request id it names."""
    broker = Broker(replace(load_config(data.path), checkpoint_interval_seconds=3600))
    request_id = new_request_id()
    broker.writer.start()
    try:
        broker.requests.reservations.reserve(request_id, tenant, Cost(600, 3000, 16), 7200)
    finally:
        broker.writer.stop()
        broker.engine.dispose()
    return request_id


@dataclass(frozen=True)
class AfterFacts:
    """What check_after counted: requests stored, pending reservations, transfers stored."""

    requests: int
    open_reservations: int
    transfers: int


def check_after(data: DataDir) -> AfterFacts:
    """With every broker stopped: no request SUBMITTED; escrow's pending credits per kind are
    exactly the reservations of the requests whose reservation is open, and a reservation is
    open exactly while its request is live (so no orphan either way); every balance equals the
    replay of the stored transfers (and double entry holds); `orbitq ledger verify` passes."""
    config = replace(load_config(data.path), checkpoint_interval_seconds=3600)
    broker = Broker(config)  # not started: no jobs, no recovery, reads only
    try:
        requests = list(broker.requests.store.all())
        assert not [r.id for r in requests if r.state is RequestState.SUBMITTED]
        for request in requests:
            live = request.state in LIVE_STATES
            assert request.reservation_open == live, request
        accounts = broker.store.all_accounts()
        escrow = {a.kind: a for a in accounts if a.system is SystemAccount.ESCROW}
        for kind in Kind:
            reserved = sum(amount_of(r.reserved, kind) for r in requests if r.reservation_open)
            assert escrow[kind].credits_pending == reserved, (kind, escrow[kind], reserved)
            assert escrow[kind].debits_posted == escrow[kind].credits_posted, kind
        broker.store.check_invariants()
        transfers = sum(1 for _ in broker.store.all_transfers())
        facts = AfterFacts(len(requests), sum(r.reservation_open for r in requests), transfers)
    finally:
        broker.engine.dispose()
    ledger_verify(data)
    return facts
