"""`orbitq sim` end to end: a real in-process broker on a simulated clock, on SQLite and
PostgreSQL. The schedule it writes passes the independent §9 validator; the report agrees
with itself, with the schedule and with the ledger; a seed repeats its schedule exactly.

The checks of the plan itself (the validator, displacements, utilisation from placements) run
with `--settlement plan`: with node agents (the default) work ends when its receipt comes,
often well before its planned end, and the scheduler reuses what it freed, so the document's
planned placements of finished work may overlap later ones that never met them. The agents'
run has its own checks below: every settlement carries a receipt hash, and a seed repeats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orbitq.clients.cli.main import main
from orbitq.services.orbits import bundled_path, load_bundled_elements
from orbitq.services.sim import SimSettings, run_simulation
from orbitq.services.sim.report import reason_category
from tests.scheduler.schedule_validator import seconds, validate

# Small enough to take seconds, busy enough that the fleet is contended (some work is refused,
# displaced or left unschedulable).
SMALL = (
    "--nodes", "6", "--requests", "160", "--hours", "4", "--seed", "3", "--step", "120",
    "--settlement", "plan",
)  # fmt: skip
# With one in-process agent per node: smaller, as every run is real (signatures, wasm).
AGENTS = ("--nodes", "4", "--requests", "40", "--hours", "2", "--seed", "3", "--step", "300")
KINDS = ("cpu", "storage", "link")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """One CLI run shared by the checks that only read its files."""
    out = tmp_path_factory.mktemp("sim") / "out"
    assert main(["sim", *SMALL, "--out", str(out), "--json"]) == 0
    schedule = json.loads((out / "schedule.json").read_text())
    report = json.loads((out / "report.json").read_text())
    return schedule, report


def test_every_placement_satisfies_the_brief(
    simulated: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    schedule, _ = simulated
    assert schedule["placements"], "nothing was placed: the check would be empty"
    assert validate(schedule) == []
    assert schedule["horizon"] == {"start": "2025-12-07T00:01:00Z", "end": "2025-12-07T04:01:00Z"}
    assert len(schedule["nodes"]) == 6
    assert len(schedule["stations"]) == 28


def test_the_report_adds_up(simulated: tuple[dict[str, Any], dict[str, Any]]) -> None:
    schedule, report = simulated
    requests = report["requests"]
    states = requests["final_states"]
    refused = sum(
        n for why, n in requests["rejected_by_reason"].items() if why.startswith("refused:")
    )
    # Every submission was accepted, refused, or stored unschedulable at once.
    assert requests["submitted"] == 160
    at_once = requests["unschedulable_at_submission"]
    assert requests["accepted"] + refused + at_once == requests["submitted"]
    assert at_once <= states.get("unschedulable", 0)
    assert sum(states.values()) + refused == requests["submitted"]
    assert requests["rejected"] == refused + sum(
        states.get(state, 0) for state in ("unschedulable", "expired", "failed")
    )
    assert requests["completed"] == states.get("completed", 0) > 0
    # The schedule holds each placed or completed request once, and each one ended rejected.
    placed = sum(states.get(state, 0) for state in ("placed", "running", "completed"))
    assert len(schedule["placements"]) == placed
    assert len(schedule["rejected"]) == requests["rejected"] - refused
    # Tokens: each reservation was settled, released, or is still held; the ledger agrees.
    tokens = report["tokens"]
    for kind in KINDS:
        assert tokens["reserved"][kind] == (
            tokens["settled"][kind] + tokens["released"][kind] + tokens["held"][kind]
        )
        assert tokens["ledger"]["escrow_pending"][kind] == tokens["held"][kind]
        assert tokens["ledger"]["consumed"][kind] == tokens["settled"][kind]
    assert tokens["settled"]["cpu"] > 0
    for share in ("cpu", "storage", "link"):
        assert 0 < report["utilisation"][share] <= 1
    assert report["scheduler"]["cycles"] == 4 * 3600 // 120
    assert report["wall_seconds"] > 0


def test_the_cpu_utilisation_is_what_the_schedule_shows(
    simulated: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    schedule, report = simulated
    start, end = (seconds(schedule["horizon"][edge]) for edge in ("start", "end"))
    cpu = {r["id"]: r["cpu_millicores"] for r in schedule["requests"]}
    used = sum(
        cpu[p["request"]] * (min(seconds(p["end"]), end) - max(seconds(p["start"]), start))
        for p in schedule["placements"]
    )
    offered = sum(n["cpu_millicores"] for n in schedule["nodes"]) * (end - start)
    assert report["utilisation"]["cpu"] == round(used / offered, 4)


def test_a_contended_fleet_refuses_and_displaces(
    simulated: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, report = simulated
    reasons = report["requests"]["rejected_by_reason"]
    # The under-funded tenant runs out of tokens; the small fleet cannot take everything.
    assert any(why.startswith("refused: insufficient") for why in reasons)
    assert any(why.startswith(("unschedulable:", "expired:")) for why in reasons)
    assert all(not any(c.isdigit() for c in why) for why in reasons)
    assert report["scheduler"]["displaced"] > 0
    assert report["scheduler"]["placements_made"] > report["requests"]["completed"]


def test_people_read_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    tiny = ("--nodes", "3", "--requests", "20", "--hours", "2", "--step", "600")
    assert main(["sim", *tiny, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "agents: 3 enrolled," in printed.out
    assert " settling transfers carry a receipt hash;" in printed.out
    assert "3 nodes, 28 stations" in printed.out
    assert "20 submitted" in printed.out
    assert f"wrote {out / 'schedule.json'} and {out / 'report.json'}" in printed.out
    assert "sim: 3 nodes, 28 stations, 20 requests over 2 h" in printed.err
    assert f"drew {out / 'schedule.png'}" in printed.out
    assert sorted(path.name for path in out.iterdir()) == [
        "report.json",
        "schedule.json",
        "schedule.png",
    ]


@pytest.fixture(scope="module")
def with_agents(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    out = tmp_path_factory.mktemp("sim-agents") / "out"
    assert main(["sim", *AGENTS, "--out", str(out), "--json"]) == 0
    schedule = json.loads((out / "schedule.json").read_text())
    report = json.loads((out / "report.json").read_text())
    return schedule, report


def test_with_agents_every_settlement_carries_a_receipt_hash(
    with_agents: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, report = with_agents
    agents = report["agents"]
    assert report["settlement"] == "receipts"
    assert agents["nodes_enrolled"] == 4
    completed = report["requests"]["completed"]
    assert completed > 0
    # Each completed request ran for real on its node (an ok run) and settled by its receipt.
    assert agents["runs_by_outcome"] == {"ok": completed}
    assert agents["receipts_verified"] == completed
    assert agents["tickets_pulled"] >= agents["receipts_verified"]
    assert agents["tickets_issued"] >= agents["tickets_pulled"]
    assert agents["settled_with_receipt"] == completed
    assert agents["settled_without_receipt"] == 0
    # In the ledger: one settling transfer per kind and request, each with the receipt hash.
    assert agents["settling_transfers"] == 3 * completed
    assert agents["settling_transfers_with_receipt_hash"] == agents["settling_transfers"]
    assert agents["receipts_refused"] == {}
    assert agents["calls"]["ReportReceipt"] == completed
    # A receipt charges what the run used: the cheap module's fuel is one core-second.
    tokens = report["tokens"]
    assert tokens["settled"]["cpu"] == completed
    for kind in KINDS:
        assert tokens["reserved"][kind] == (
            tokens["settled"][kind] + tokens["released"][kind] + tokens["held"][kind]
        )
        assert tokens["ledger"]["consumed"][kind] == tokens["settled"][kind]
        assert tokens["ledger"]["escrow_pending"][kind] == tokens["held"][kind]


def test_with_agents_a_seed_repeats_itself(
    with_agents: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    schedule, report = with_agents
    out = tmp_path / "again"
    assert main(["sim", *AGENTS, "--out", str(out), "--json"]) == 0
    again = json.loads((out / "report.json").read_text())
    assert json.loads((out / "schedule.json").read_text()) == schedule
    assert again["requests"] == report["requests"]
    assert again["tokens"] == report["tokens"]
    assert again["agents"] == report["agents"]


def _settings(seed: int, db_url: str | None = None) -> SimSettings:
    return SimSettings(
        elements=tuple(load_bundled_elements("starlink")),
        stations_text=bundled_path("ground-stations").read_text(),
        nodes=5,
        requests=60,
        hours=3,
        seed=seed,
        step_seconds=300,
        db_url=db_url,
        settlement="plan",  # three runs on each database: the clock's, to stay fast
    )


def test_the_same_seed_gives_the_same_schedule_on_either_database(db_url: str) -> None:
    first = run_simulation(_settings(11, db_url))
    again = run_simulation(_settings(11))
    other = run_simulation(_settings(12))
    assert first.schedule["placements"]
    assert first.schedule == again.schedule
    assert validate(first.schedule) == []
    assert other.schedule != first.schedule
    assert first.report["requests"] == again.report["requests"]
    assert first.report["tokens"] == again.report["tokens"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--nodes", "0"), "--nodes must be 1.."),
        (("--requests", "100001"), "--requests must be 0..100,000"),
        (("--hours", "1"), "--hours must be 2..168"),
        (("--step", "5"), "--step must be 10..3600 seconds"),
        (("--tle", "bundled:galileo"), "is not bundled"),
        (("--tle", "/nonexistent/file.tle"), "cannot read --tle"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert main(["sim", *args, "--out", str(tmp_path / "out")]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_database_must_be_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    used = f"sqlite:///{tmp_path / 'used.db'}"
    tiny = ("--nodes", "2", "--requests", "5", "--hours", "2", "--step", "3600")
    assert main(["sim", *tiny, "--db", used, "--out", str(tmp_path / "first")]) == 0
    capsys.readouterr()
    assert main(["sim", *tiny, "--db", used, "--out", str(tmp_path / "again")]) != 0
    assert "give an empty database" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_out_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    occupied = tmp_path / "file"
    occupied.write_text("")
    assert main(["sim", *SMALL, "--out", str(occupied)]) != 0
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        (
            "deadline can no longer be met: 2025-12-07T03:10:00Z is past",
            "deadline can no longer be met: N is past",
        ),
        (
            "no downlink contact before deadline (3 nodes had 120 s)",
            "no downlink contact before deadline",
        ),
        (
            "no contact with an allowed station; capacity: 2 of 6 nodes full",
            "no contact with an allowed station",
        ),
        ("", "unknown"),
    ],
)
def test_reasons_count_together_without_their_figures(reason: str, category: str) -> None:
    assert reason_category(reason) == category
