"""`orbitq node|station|contacts ...` through `main([...])` against a real server."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from orbitq.clients.cli.main import EXIT_BROKER_ERROR, main
from orbitq.services.orbits import tle_checksum
from tests.conftest import ServerHandle
from tests.integration.sky import STARLINK_COUNT, omm_text, starlink_text, stations_csv, tenant_key

DAY = timedelta(days=1)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def online(server: ServerHandle, key: str | None = None) -> list[str]:
    return ["--target", server.target, "--api-key", key or server.operator_key]


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_node_import_list_and_state(
    server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tle = _file(tmp_path, "starlink.tle", starlink_text())
    capacities = _file(
        tmp_path,
        "capacities.csv",
        "norad_id,cpu_millicores,storage_mb,downlink_mbps,uplink_mbps\n44714,16000,1000,50,5\n",
    )
    code, out, _ = run(
        capsys,
        "node", "import", tle, "--cpu-millicores", "8000", "--label", "shell=53",
        "--label", "operator=spacex", "--capacities", capacities, *online(server),
    )  # fmt: skip
    assert code == 0
    assert (
        f"imported {STARLINK_COUNT} node(s) from {tle}: {STARLINK_COUNT} created, 0 updated" in out
    )
    code, out, _ = run(capsys, "node", "import", tle, "--json", *online(server))
    assert code == 0
    assert json.loads(out) == {
        "created": 0,
        "updated": STARLINK_COUNT,
        "problems": [],
        "stale": [],
        "warnings": [],
    }
    code, out, _ = run(capsys, "node", "list", "--label", "shell=53", "--json", *online(server))
    nodes = json.loads(out)["nodes"]
    assert code == 0
    assert len(nodes) == STARLINK_COUNT
    first = nodes[0]
    assert (first["id"], first["cpu_millicores"], first["storage_mb"]) == ("44714", 16000, 1000)
    assert nodes[1]["cpu_millicores"] == 8000
    assert first["labels"] == {"operator": "spacex", "shell": "53"}
    assert first["tle_line1"] == starlink_text().splitlines()[1]
    code, out, _ = run(capsys, "node", "state", "44714", "degraded", *online(server))
    assert (code, out.strip()) == (0, "node 44714 (STARLINK-1008) is degraded")
    code, out, _ = run(capsys, "node", "list", "--state", "degraded", *online(server))
    lines = out.strip().splitlines()
    assert code == 0
    assert lines[0].split() == [
        "ID", "NAME", "STATE", "CPU_MC", "STORAGE_MB", "DOWN_MBPS", "UP_MBPS", "EPOCH", "LABELS"
    ]  # fmt: skip
    assert lines[1].split()[:3] == ["44714", "STARLINK-1008", "degraded"]
    assert len(lines) == 2
    code, _, err = run(capsys, "node", "state", "99999", "down", *online(server))
    assert code == EXIT_BROKER_ERROR
    assert err.strip() == "orbitq: no node '99999': import its element set first [NOT_FOUND]"


def test_node_import_problems_and_stale_warnings(
    server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = starlink_text().splitlines()
    lines[4] = lines[4][:68] + str((tle_checksum(lines[4][:68]) + 1) % 10)
    bad = _file(tmp_path, "bad.tle", "\n".join(lines) + "\n")
    code, out, err = run(capsys, "node", "import", bad, *online(server))
    assert (code, out) == (EXIT_BROKER_ERROR, "")
    assert err.startswith("orbitq: 1 bad record(s); nothing was imported")
    assert "\n  line 5: " in err
    assert err.rstrip().endswith("[INVALID_ARGUMENT]")
    code, out, _ = run(capsys, "node", "import", bad, "--skip-bad", *online(server))
    assert code == 0
    assert f"{STARLINK_COUNT - 1} created" in out
    assert "skipped 1 bad record(s):\n  line 5: " in out
    omm = _file(tmp_path, "sample.json", omm_text("omm-sample.json"))
    code, out, err = run(capsys, "node", "import", omm, "--format", "omm-json", *online(server))
    assert code == 0
    assert "7 node(s)" in out
    assert "days from the broker's clock" in err
    assert "stale element sets: 25544, 44057, 612345" in err
    code, _, err = run(capsys, "node", "import", str(tmp_path / "missing.tle"), *online(server))
    assert code == 1
    assert err.startswith("orbitq: cannot read element-set file")


def test_stations_add_import_and_list(
    server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stations = _file(tmp_path, "stations.csv", stations_csv())
    code, out, _ = run(capsys, "station", "import", stations, *online(server))
    assert (code, out.strip()) == (
        0,
        f"imported 3 station(s) from {stations}: 3 created, 0 updated",
    )
    code, out, _ = run(
        capsys,
        "station", "add", "oslo", "--name", "Oslo", "--lat", "59.9", "--lon", "10.7",
        "--antennas", "2", "--label", "country=NO", *online(server),
    )  # fmt: skip
    assert (code, out.strip()) == (0, "station oslo created")
    code, _, err = run(
        capsys, "station", "add", "oslo", "--name", "Oslo", "--lat", "95", "--lon", "10.7",
        *online(server),
    )  # fmt: skip
    assert code == EXIT_BROKER_ERROR
    assert "field 'latitude' is 95.0, outside -90..90 degrees" in err
    bad = _file(tmp_path, "bad.json", json.dumps([{"id": "x", "name": "X"}]))
    code, _, err = run(capsys, "station", "import", bad, *online(server))
    assert code == EXIT_BROKER_ERROR
    assert "nothing was imported" in err
    assert "record 1: field 'latitude' is missing" in err
    code, out, _ = run(capsys, "station", "list", "--json", *online(server))
    listed = json.loads(out)["stations"]
    assert [s["id"] for s in listed] == ["hartebeesthoek", "oslo", "puntaarenas", "svalbard"]
    assert listed[1]["labels"] == {"country": "NO"}
    assert listed[1]["downlink_mbps"] == 200.0
    code, out, _ = run(capsys, "station", "list", *online(server))
    assert out.splitlines()[0].split()[:3] == ["ID", "NAME", "LAT"]


def test_contacts_list(
    server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "node", "import", _file(tmp_path, "s.tle", starlink_text()), *online(server))
    run(capsys, "station", "import", _file(tmp_path, "s.csv", stations_csv()), *online(server))
    server.broker.refresh_contacts()
    now = server.broker.clock.now()
    stored = server.broker.constellation.contacts_between(now - DAY, now + 2 * DAY)
    code, out, _ = run(capsys, "contacts", "list", "--json", *online(server, tenant_key(server)))
    assert code == 0
    contacts = json.loads(out)["contacts"]
    assert len(contacts) == len(stored)
    assert set(contacts[0]) == {"id", "node", "station", "aos", "los", "max_elevation_deg"}
    assert contacts[0]["aos"].endswith("Z")
    code, out, _ = run(
        capsys, "contacts", "list", "--station", "hartebeesthoek",
        "--start", "2025-12-06T06:00:00Z", "--end", "2025-12-06T12:00:00Z", "--json",
        *online(server),
    )  # fmt: skip
    window = json.loads(out)["contacts"]
    assert window
    assert {c["station"] for c in window} == {"hartebeesthoek"}
    assert all(c["los"] > "2025-12-06T06:00:00Z" for c in window)
    assert all(c["aos"] < "2025-12-06T12:00:00Z" for c in window)
    code, out, err = run(capsys, "contacts", "list", "--limit", "5", *online(server))
    assert code == 0
    assert out.splitlines()[0].split() == ["NODE", "STATION", "AOS", "LOS", "MAX_ELEVATION_DEG"]
    assert len(out.splitlines()) == 6
    assert "showing the first 5 contacts" in err
    code, _, err = run(
        capsys, "contacts", "list", "--start", "2025-12-07T00:00:00Z",
        "--end", "2025-12-06T00:00:00Z", *online(server),
    )  # fmt: skip
    assert code == 1
    assert "is not after --start" in err
