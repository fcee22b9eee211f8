"""`orbitq request explain`, `request quote`'s ETA and `request cancel`'s charge through
`main([...])` against a real server (SQLite and PostgreSQL): tables for people, --json for
scripts, refusals as exit 3."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from orbitq.clients.cli.main import EXIT_BROKER_ERROR, main
from orbitq.services.clock import SimulatedClock
from tests.conftest import ServerHandle
from tests.integration.sky import operator, tenant_key
from tests.requests.sky import build_world

pytestmark = pytest.mark.settlement("plan")

JOB = [
    "--cpu-millicores", "1000", "--run-seconds", "600", "--storage-mb", "500",
    "--output-mb", "200",
]  # fmt: skip
# Two hours ahead: the cut-off (15 min before the uplink) is still to come.
WINDOW = ["--not-before", "2025-12-06T02:00:00Z", "--deadline", "2025-12-06T06:00:00Z"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def setup(server: ServerHandle, tenant: str = "acme") -> list[str]:
    key = tenant_key(server, tenant)
    with operator(server) as admin:
        admin.mint(tenant, cpu=100_000, storage=100_000, link=10_000)
    return ["--target", server.target, "--api-key", key]


def submitted(capsys: pytest.CaptureFixture[str], acme: list[str], *flags: str) -> str:
    code, out, err = run(capsys, "request", "submit", *JOB, *flags, "--json", *acme)
    assert code == 0, err
    return str(json.loads(out)["request"]["id"])


def test_explain_a_waiting_and_a_placed_request(
    server: ServerHandle, capsys: pytest.CaptureFixture[str], clock: SimulatedClock
) -> None:
    build_world(server.broker)
    acme = setup(server)
    tight = submitted(capsys, acme, "--deadline", "2025-12-06T01:00:00Z")
    later = submitted(
        capsys, acme, "--not-before", "2025-12-06T02:00:00Z", "--deadline", "2025-12-06T06:00:00Z"
    )
    server.broker.scheduling.run_cycle()

    code, out, _ = run(capsys, "request", "explain", tight, "--json", *acme)
    assert code == 0
    answer = json.loads(out)
    assert answer["id"] == tight
    eta = answer["eta"]
    assert eta["fits"] is False
    assert eta["placement"] is None
    assert sum(r["nodes"] for r in eta["reasons"]) == 20
    minutes = eta["later_deadline_seconds"] // 60
    assert minutes > 0
    assert eta["advice"].startswith(f"fits if the deadline is {minutes} min later")
    assert answer["terms"]["cutoff"] is None

    code, out, _ = run(capsys, "request", "explain", tight, *acme)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"request {tight} (acme) is ")
    assert lines[1].split() == ["PLUGIN", "REASON", "NODES"]
    assert f"eta       fits if the deadline is {minutes} min later" in out
    assert "a later submission can take the slot" in out

    code, out, _ = run(capsys, "request", "explain", later, "--json", *acme)
    assert code == 0
    answer = json.loads(out)
    code, status, _ = run(capsys, "request", "status", later, "--json", *acme)
    placement = json.loads(status)["placement"]
    assert answer["eta"]["planned"] is True
    assert answer["eta"]["placement"] == placement  # the stored plan, as status shows it
    assert answer["terms"]["fee"] == {"cpu": 0, "storage": 0, "link": 16}

    code, out, _ = run(capsys, "request", "explain", later, *acme)
    assert code == 0
    assert "planned (stored placement):" in out
    steps = [line.split()[0] for line in out.splitlines() if line.split()[:1] in (
        ["uplink"], ["run"], ["downlink"]
    )]  # fmt: skip
    assert steps[:2] == ["uplink", "run"]
    assert steps[2:]
    assert set(steps[2:]) == {"downlink"}
    assert "cancel    free to cancel until " in out

    # After the cut-off, the cancel answer says what it charged.
    uplink_at = placement["uplink"]["at"]
    clock.set(_instant(uplink_at) - timedelta(minutes=10))
    code, out, _ = run(capsys, "request", "cancel", later, *acme)
    assert code == 0
    assert "charged   cpu 0  storage 0  link 16 (cancelled after its cut-off" in out
    code, out, _ = run(capsys, "request", "cancel", later, "--json", *acme)
    assert json.loads(out)["charged"] == {"cpu": 0, "storage": 0, "link": 16}


def test_quote_shows_the_eta_and_explain_refuses_others(
    server: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    build_world(server.broker)
    acme = setup(server)
    globex = setup(server, "globex")
    code, out, _ = run(capsys, "request", "quote", *JOB, *WINDOW, *acme)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "reserves  cpu 600  storage 2,000  link 16"  # a 4 h window
    assert "eta       fits now: node " in out
    assert "cancel    free to cancel until " in out
    code, out, _ = run(capsys, "request", "quote", *JOB, *WINDOW, "--json", *acme)
    answer = json.loads(out)
    assert answer["eta"]["fits"] is True
    assert answer["terms"]["fee"]["link"] == 16
    code, out, _ = run(
        capsys, "request", "quote", *JOB, *WINDOW, "--no-eta", "--json", *acme,
    )  # fmt: skip
    assert json.loads(out)["eta"] is None

    mine = submitted(capsys, acme, "--deadline", "2025-12-06T06:00:00Z")
    code, _, err = run(capsys, "request", "explain", mine, *globex)
    assert code == EXIT_BROKER_ERROR
    assert "PERMISSION_DENIED" in err or "another tenant" in err
    code, _, err = run(capsys, "request", "explain", "f" * 32, *acme)
    assert code == EXIT_BROKER_ERROR
    assert "no request" in err


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
