"""`orbitq request ...` and `orbitq schedule export` through `main([...])` against a real server
(SQLite and PostgreSQL): specs from flags and from TOML/JSON files with flags overriding,
tables and --json, the broker's refusals as exit 3, and an exported schedule that the
independent §9 checker accepts and that equals the broker's in-process document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orbitq.clients.cli.main import EXIT_BROKER_ERROR, main
from orbitq.ledger.model import Kind
from orbitq.services.clock import SimulatedClock
from tests.conftest import EPOCH, ServerHandle
from tests.integration.sky import operator, tenant_key
from tests.requests.books import check_books
from tests.requests.sky import build_world
from tests.scheduler.schedule_validator import validate

# The clock starts and completes placed work (no node agent runs in these tests).
pytestmark = pytest.mark.settlement("plan")

DEADLINE = "2025-12-06T06:00:00Z"
JOB = [
    "--cpu-millicores", "1000", "--run-seconds", "600", "--storage-mb", "500",
    "--output-mb", "200", "--deadline", DEADLINE,
]  # fmt: skip


ACME_MINTED = {Kind.CPU: 100_000, Kind.STORAGE: 5_000_000, Kind.LINK: 10_000}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def setup(server: ServerHandle) -> list[str]:
    build_world(server.broker)
    key = tenant_key(server, "acme")
    with operator(server) as admin:
        admin.mint(
            "acme",
            cpu=ACME_MINTED[Kind.CPU],
            storage=ACME_MINTED[Kind.STORAGE],
            link=ACME_MINTED[Kind.LINK],
        )
    return ["--target", server.target, "--api-key", key]


def test_quote_submit_status_list_cancel_and_watch(
    server: ServerHandle, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    acme = setup(server)
    code, out, _ = run(capsys, "request", "quote", *JOB, *acme)
    assert code == 0
    assert out.splitlines()[0] == "reserves  cpu 600  storage 3,000  link 16"
    code, out, _ = run(capsys, "request", "quote", *JOB, "--json", *acme)
    assert json.loads(out)["cost"] == {"cpu": 600, "storage": 3000, "link": 16}

    spec = tmp_path / "job.toml"
    spec.write_text(
        'name = "ndvi"\nworkload = "registry/ndvi:3"\ncpu_millicores = 2000\n'
        "run_seconds = 900\nstorage_mb = 800\noutput_mb = 100\npriority = 1\n"
        'deadline = 2025-12-06T08:00:00Z\nstation_countries = ["ZA"]\n'
        "[node_labels]\n"
    )
    code, out, _ = run(
        capsys, "request", "submit", "--spec", str(spec), "--priority", "4",
        "--idempotency-key", "ndvi-1", "--json", *acme,
    )  # fmt: skip
    assert code == 0, out
    submitted = json.loads(out)
    assert submitted["created"]
    request = submitted["request"]
    assert request["state"] == "pending"
    assert request["spec"]["priority"] == 4  # the flag beats the file
    assert request["spec"]["name"] == "ndvi"
    assert request["spec"]["station_countries"] == ["ZA"]
    assert request["spec"]["deadline"] == "2025-12-06T08:00:00Z"
    request_id = request["id"]
    code, out, _ = run(
        capsys, "request", "submit", "--spec", str(spec), "--priority", "4",
        "--idempotency-key", "ndvi-1", *acme,
    )  # fmt: skip
    assert code == 0
    assert "this idempotency key was used before" in out
    assert f"request {request_id}  tenant acme  PENDING" in out

    as_json = tmp_path / "other.json"
    as_json.write_text(json.dumps({"cpu_millicores": 500, "run_seconds": 60, "storage_mb": 10,
                                   "deadline": DEADLINE, "node_ids": ["44714"]}))  # fmt: skip
    code, out, _ = run(capsys, "request", "submit", "--spec", str(as_json), "--json", *acme)
    assert code == 0
    other = json.loads(out)["request"]
    assert other["spec"]["node_ids"] == ["44714"]

    server.broker.scheduling.run_cycle()
    code, out, _ = run(capsys, "request", "status", request_id, *acme)
    assert code == 0
    assert "PLACED" in out
    assert "placement node " in out
    code, out, _ = run(capsys, "request", "status", request_id, "--json", *acme)
    placed = json.loads(out)
    assert placed["placement"]["uplink"]["station"] == "hartebeesthoek"
    assert {s["station"] for s in placed["placement"]["downlink"]} == {"hartebeesthoek"}

    code, out, _ = run(capsys, "request", "list", *acme)
    assert code == 0
    assert out.splitlines()[0].split() == [
        "ID", "TENANT", "NAME", "STATE", "PRIORITY", "DEADLINE", "NODE", "REASON",
    ]  # fmt: skip
    assert len(out.splitlines()) == 3
    code, out, _ = run(capsys, "request", "cancel", other["id"], *acme)
    assert code == 0
    assert out.startswith(f"request {other['id']} is cancelled: cancelled by tenant acme")
    code, out, _ = run(capsys, "request", "list", "--state", "cancelled", "--json", *acme)
    assert [r["id"] for r in json.loads(out)["requests"]] == [other["id"]]

    code, out, _ = run(capsys, "request", "watch", other["id"], *acme)
    assert code == 0
    assert [line.split()[2:5] for line in out.splitlines()] == [
        ["(new)", "->", "submitted:"],
        ["submitted", "->", "pending:"],
        ["pending", "->", "placed:"],
        ["placed", "->", "cancelled:"],
    ]
    code, out, _ = run(capsys, "request", "watch", other["id"], "--after", "3", "--json", *acme)
    (line,) = out.splitlines()
    assert json.loads(line)["to"] == "cancelled"


def test_refusals_exit_with_the_brokers_message(
    server: ServerHandle, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    acme = setup(server)
    code, _, err = run(capsys, "request", "submit", "--cpu-millicores", "1", *acme)
    assert code == 1
    assert "the request needs --deadline, --run-seconds, --storage-mb" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("cpu = 5\n")
    code, _, err = run(capsys, "request", "submit", "--spec", str(bad), *acme)
    assert code == 1
    assert "unknown key(s) cpu" in err
    code, _, err = run(capsys, "request", "submit", *JOB, "--priority", "11", *acme)
    assert code == EXIT_BROKER_ERROR
    assert "priority 11 is out of range" in err
    assert "[INVALID_ARGUMENT]" in err
    code, _, err = run(capsys, "request", "status", "0" * 32, *acme)
    assert code == EXIT_BROKER_ERROR
    assert "[NOT_FOUND]" in err


def test_schedule_export_passes_the_independent_checker(
    server: ServerHandle,
    clock: SimulatedClock,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    broker = server.broker
    acme = setup(server)
    operator_flags = ["--target", server.target, "--api-key", server.operator_key]
    sizes = [("4000", "3600", "60000"), ("1000", "600", "500"), ("2000", "1800", "20000")]
    for index in range(12):
        cpu, run_seconds, storage = sizes[index % 3]
        code, _, err = run(
            capsys, "request", "submit", "--cpu-millicores", cpu, "--run-seconds", run_seconds,
            "--storage-mb", storage, "--output-mb", str(100 * index), "--input-mb", str(index),
            "--deadline", "2025-12-06T09:00:00Z", "--priority", str(index % 4), *acme,
        )  # fmt: skip
        assert code == 0, err
        if index % 4 == 3:
            broker.scheduling.run_cycle()
    run(capsys, "request", "submit", *JOB, "--cpu-millicores", "90000", *acme)
    broker.scheduling.run_cycle()
    clock.advance(3 * 3600)
    broker.scheduling.tick()
    out = tmp_path / "schedule.json"
    code, printed, err = run(capsys, "schedule", "export", "--out", str(out), *operator_flags)
    assert code == 0, err
    document = json.loads(out.read_text())
    assert printed.startswith(f"wrote {out}: 13 requests, ")
    assert len(document["placements"]) >= 6
    assert len(document["rejected"]) == 1
    assert validate(document) == []
    # The same document the broker writes in-process.
    assert document == broker.scheduling.schedule_document()
    window = run(
        capsys, "schedule", "export", "--out", str(tmp_path / "w.json"),
        "--start", "2025-12-06T00:00:00Z", "--end", "2025-12-06T12:00:00Z", *operator_flags,
    )  # fmt: skip
    assert window[0] == 0
    narrowed = json.loads((tmp_path / "w.json").read_text())
    assert narrowed["horizon"] == {"start": "2025-12-06T00:00:00Z", "end": "2025-12-06T12:00:00Z"}
    assert narrowed == broker.scheduling.schedule_document(EPOCH, EPOCH.replace(hour=12))
    check_books(broker, {"acme": ACME_MINTED})
