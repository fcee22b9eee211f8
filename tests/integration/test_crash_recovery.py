"""kill -9 at any moment loses no acknowledged transfer and creates no duplicate; the broker
restarts on the same data and `orbitq ledger verify` passes (brief §12).

A real `orbitq serve` process is killed with SIGKILL while clients are transferring; every
transfer a client saw acknowledged must be in the ledger exactly once after the restart, and a
retry of every operation (acknowledged or not) must be safe.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from orbitq.clients import BrokerClient, OrbitqError, new_id

CLIENTS = 4
ACKNOWLEDGED_BEFORE_KILL = 40


def _orbitq(*args: str) -> list[str]:
    return [sys.executable, "-m", "orbitq.clients.cli.main", *args]


def _serve(data_dir: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        _orbitq("serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"),
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "listening on" in line, log.read_text()
    return process, line.strip().rsplit(" ", 1)[-1]


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "broker"
    init = subprocess.run(
        _orbitq("init", "--data-dir", str(data_dir), "--json"),
        capture_output=True,
        text=True,
        check=True,
    )
    operator_key = json.loads(init.stdout)["operator_api_key"]
    process, target = _serve(data_dir, tmp_path / "broker.log")
    with BrokerClient(target, operator_key) as admin:
        admin.create_tenant("payer")
        admin.create_tenant("payee")
        admin.mint("payer", cpu=1_000_000)
    acknowledged: list[int] = []
    attempted: list[int] = []
    lock = threading.Lock()
    enough = threading.Event()

    def spend() -> None:
        with BrokerClient(target, operator_key, timeout=5) as client:
            while True:
                operation = new_id()
                with lock:
                    attempted.append(operation)
                try:
                    client.transfer("payee", cpu=1, from_tenant="payer", id=operation)
                except OrbitqError:
                    return  # the broker died under us
                with lock:
                    acknowledged.append(operation)
                    if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                        enough.set()

    threads = [threading.Thread(target=spend) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    assert enough.wait(60), "the clients made no progress"
    process.send_signal(signal.SIGKILL)
    process.wait()
    for thread in threads:
        thread.join(30)
    process, target = _serve(data_dir, tmp_path / "broker.log")
    try:
        with BrokerClient(target, operator_key) as admin:
            history = []
            token = ""
            while True:
                page = admin.list_transfers(
                    "payer", code="transfer", page_size=1000, page_token=token
                )
                history.extend(page.items)
                token = page.next_page_token
                if not token:
                    break
            stored_operations = [int.from_bytes(record.user_data, "big") for record in history]
            assert len(stored_operations) == len(set(stored_operations)), (
                "a transfer is stored twice"
            )
            assert set(acknowledged) <= set(stored_operations), "an acknowledged transfer was lost"
            assert set(stored_operations) <= set(attempted)
            # Retrying every operation is safe: acknowledged ones exist, the rest may now apply.
            for operation in attempted:
                outcomes = admin.transfer("payee", cpu=1, from_tenant="payer", id=operation)
                expected = "exists" if operation in stored_operations else "ok"
                assert [o.result for o in outcomes] == [expected]
            (payer,) = [a for a in admin.balances("payer") if a.kind == "cpu"]
            assert payer.available == 1_000_000 - len(attempted)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    verify = subprocess.run(
        _orbitq("ledger", "verify", "--data-dir", str(data_dir)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
