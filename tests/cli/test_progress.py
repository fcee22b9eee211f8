"""Progress on long work: a bar with a rate and an ETA when stderr is a terminal, and not one
byte of it otherwise (pipes, files, --json). Each command runs in a child process, its stderr
on a real pseudo-terminal or on a pipe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.terminal import Run, environment, on_pipes, on_terminal, orbitq
from tests.conftest import ServerHandle
from tests.integration.sky import STARLINK_COUNT, starlink_text, stations_csv

# Every Starlink satellite of the snapshot for an hour: several search blocks, a few seconds.
COMPUTE = (
    "contacts", "compute", "--tle", "bundled:starlink", "--stations", "bundled:ground-stations",
    "--start", "2025-12-06T00:00:00Z", "--hours", "1",
)  # fmt: skip
SIM = ("sim", "--nodes", "3", "--requests", "20", "--hours", "2", "--step", "600")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def text(screen: bytes) -> str:
    """What a terminal shows, without its control sequences."""
    return ANSI.sub(b"", screen).decode("utf-8", errors="replace")


def assert_bar(run: Run, label: str, unit: str) -> None:
    shown = text(run.stderr)
    assert f"{label} [" in shown, shown[-500:]
    assert "━" in shown  # the bar itself
    assert "100%" in shown
    assert re.search(rf"[\d,]+ {re.escape(unit)}/s", shown), shown[-500:]
    assert "ETA" in shown


def test_contacts_compute_shows_a_bar_on_a_terminal_and_nothing_on_a_pipe(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path)
    terminal = on_terminal(orbitq(*COMPUTE), env, tmp_path)
    piped = on_pipes(orbitq(*COMPUTE), env)
    assert terminal.code == piped.code == 0
    assert_bar(terminal, "searching", "satellites")
    assert "9,038/9,038" in text(terminal.stderr)
    # The table on stdout is the same bytes either way, and a pipe gets no progress at all.
    assert terminal.stdout == piped.stdout
    assert piped.stdout.startswith(b"NODE")
    assert piped.stderr == b""


def test_json_output_is_byte_identical_and_draws_nothing(tmp_path: Path) -> None:
    env = environment(tmp_path)
    terminal = on_terminal(orbitq(*COMPUTE, "--json"), env, tmp_path)
    piped = on_pipes(orbitq(*COMPUTE, "--json"), env)
    assert terminal.code == piped.code == 0
    assert terminal.stdout == piped.stdout
    assert json.loads(piped.stdout)["contacts"]
    assert "searching" not in text(terminal.stderr)
    assert piped.stderr == b""


def test_sim_shows_simulated_time_and_still_writes_its_files(tmp_path: Path) -> None:
    env = environment(tmp_path)
    terminal = on_terminal(orbitq(*SIM, "--out", str(tmp_path / "a")), env, tmp_path)
    piped = on_pipes(orbitq(*SIM, "--out", str(tmp_path / "b")), env)
    assert terminal.code == piped.code == 0
    assert_bar(terminal, "simulating", "sim min")
    assert "120/120" in text(terminal.stderr)  # two simulated hours, in minutes
    # The news lines still reach stderr, above the bar; a pipe gets them and nothing else.
    assert "sim: 3 nodes, 28 stations" in text(terminal.stderr)
    assert all(line.startswith("sim: ") for line in piped.stderr.decode().splitlines())
    assert (tmp_path / "a" / "schedule.png").is_file()
    assert (tmp_path / "a" / "schedule.json").read_bytes() == (
        tmp_path / "b" / "schedule.json"
    ).read_bytes()


def test_ledger_verify_offline_shows_entries_per_second(tmp_path: Path) -> None:
    env = environment(tmp_path, ORBITQ_TRUST_DIR=str(tmp_path / "trust"))
    data_dir = str(tmp_path / "data")
    assert on_pipes(orbitq("init", "--data-dir", data_dir), env).code == 0
    terminal = on_terminal(orbitq("ledger", "verify", "--data-dir", data_dir), env, tmp_path)
    assert terminal.code == 0, text(terminal.stderr)
    assert_bar(terminal, "verifying", "entries")
    assert b"verified" in terminal.stdout
    quiet = on_terminal(orbitq("ledger", "verify", "--data-dir", data_dir, "--json"), env, tmp_path)
    assert quiet.code == 0
    assert json.loads(quiet.stdout)["ok"] is True
    assert "verifying" not in text(quiet.stderr)


@pytest.mark.parametrize("what", ["node", "station"])
def test_imports_show_reading_and_the_broker_call(
    what: str, server: ServerHandle, tmp_path: Path
) -> None:
    env = environment(tmp_path)
    path = tmp_path / "input"
    path.write_text(starlink_text() if what == "node" else stations_csv())
    connection = ("--target", server.target, "--api-key", server.operator_key)
    terminal = on_terminal(orbitq(what, "import", str(path), *connection), env, tmp_path)
    assert terminal.code == 0, text(terminal.stderr)
    shown = text(terminal.stderr)
    assert "reading [" in shown
    assert "100%" in shown
    assert re.search(r"[\d.]+/[\d.]+ (bytes|kB)", shown), shown
    assert re.search(r"[\d.]+ (bytes|kB|MB)/s", shown), shown
    assert "importing on the broker" in shown
    assert re.search(r"\d:\d\d:\d\d", shown)  # the time elapsed beside the spinner
    piped = on_pipes(orbitq(what, "import", str(path), *connection), env)
    assert piped.code == 0
    assert piped.stderr == b""
    count = STARLINK_COUNT if what == "node" else 3
    assert f"imported {count} {what}(s)".encode() in piped.stdout
