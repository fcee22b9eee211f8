"""The pictures: `orbitq schedule plot`, `orbitq contacts plot` and the sim's schedule.png are
real PNGs of the size asked for, with content (many colours, little blank), in the colours that
carry meaning (each tenant's, the track's, the contacts', land and sea)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image

from orbitq.clients.cli import gantt, skymap
from orbitq.clients.cli.main import main
from orbitq.clients.cli.pictures import tenant_colours
from tests.conftest import ServerHandle
from tests.integration.sky import starlink_text, stations_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIM = ("sim", "--nodes", "5", "--requests", "150", "--hours", "4", "--seed", "2", "--step", "300")
NODE = "44714"  # STARLINK-1008, the first satellite of the bundled snapshot
PIXELS_OF_A_COLOUR_MIN = 40


def pixels(path: Path) -> tuple[tuple[int, int], Counter[tuple[int, int, int]]]:
    """(width, height) and how many pixels have each colour; fails unless a real PNG."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        rgb = image.convert("RGB")
        counts = rgb.getcolors(maxcolors=rgb.width * rgb.height)
        assert counts is not None
        # An RGB image's colours are (r, g, b) tuples (a float only for one-band images).
        return rgb.size, Counter({cast(tuple[int, int, int], c): n for n, c in counts})


def rgb(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def assert_picture(path: Path, size: tuple[int, int], colours: list[str]) -> None:
    shape, counts = pixels(path)
    assert shape == size
    total = size[0] * size[1]
    assert len(counts) > 50, "too few colours: a blank picture?"
    assert counts[(255, 255, 255)] < 0.95 * total, "all but white: nothing drawn?"
    for colour in colours:
        assert counts[rgb(colour)] >= PIXELS_OF_A_COLOUR_MIN, f"{colour} is not in the picture"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pictures") / "sim"
    assert main([*SIM, "--out", str(out), "--json"]) == 0
    return out


def tenants_of(document: dict[str, Any]) -> list[str]:
    placed = {p["request"] for p in document["placements"]}
    return sorted({r["tenant"] for r in document["requests"] if r["id"] in placed})


def test_the_sim_draws_its_schedule(simulated: Path) -> None:
    document = json.loads((simulated / "schedule.json").read_text())
    tenants = tenants_of(document)
    assert len(tenants) >= 3
    colours = tenant_colours(tenants)
    assert_picture(
        simulated / "schedule.png",
        gantt.SIZE_PX_DEFAULT,
        [*colours.values(), gantt.CONTACT_COLOUR],
    )


def test_schedule_plot_from_a_file(
    simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "schedule.png"
    source = simulated / "schedule.json"
    code = main(["schedule", "plot", "--from", str(source), "--out", str(out), "--size",
                 "1200x800", "--nodes", "3"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: 3 node(s), ")
    document = json.loads(source.read_text())
    assert_picture(out, (1200, 800), list(tenant_colours(tenants_of(document)).values()))


def test_schedule_plot_refuses_what_is_not_a_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": []}')
    out = tmp_path / "x.png"
    assert main(["schedule", "plot", "--from", str(bad), "--out", str(out)]) == 1
    assert "not a schedule document (brief §9)" in capsys.readouterr().err
    bad.write_text("{")
    assert main(["schedule", "plot", "--from", str(bad), "--out", str(out)]) == 1
    assert f"--from {bad} is not JSON" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(["schedule", "plot", "--from", str(bad), "--out", str(out), "--size", "10x10"])
    assert "width must be 400..8000" in capsys.readouterr().err


def test_contacts_plot_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sky.png"
    when = ("--start", "2025-12-06T00:00:00Z", "--hours", "3")
    code = main(
        ["contacts", "plot", "--node", NODE, "--tle", "bundled:starlink", *when, "--size",
         "1400x800", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: STARLINK-1008 (44714), ")
    assert " contact(s) with " in printed
    assert_picture(
        out,
        (1400, 800),
        [skymap.TRACK_COLOUR, skymap.CONTACT_COLOUR, skymap.LAND_COLOUR, skymap.OCEAN_COLOUR],
    )


def test_contacts_plot_names_a_missing_node(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["contacts", "plot", "--node", "1", "--tle", "bundled:starlink", "--out", "x.png"])
    assert code == 1
    assert "--tle bundled:starlink holds no element set for node 1" in capsys.readouterr().err


def test_both_plots_online(
    server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = ["--target", server.target, "--api-key", server.operator_key]
    (tmp_path / "s.tle").write_text(starlink_text())
    (tmp_path / "s.csv").write_text(stations_csv())
    assert main(["node", "import", str(tmp_path / "s.tle"), *connection]) == 0
    assert main(["station", "import", str(tmp_path / "s.csv"), *connection]) == 0
    server.broker.refresh_contacts()
    start = server.broker.clock.now().astimezone(UTC)
    end = start + timedelta(hours=6)
    stored = server.broker.constellation.contacts_between(start, end)
    assert any(c.node == NODE for c in stored)
    capsys.readouterr()
    sky = tmp_path / "sky.png"
    code = main(["contacts", "plot", "--node", NODE, "--start", f"{start:%Y-%m-%dT%H:%M:%SZ}",
                 "--hours", "6", "--out", str(sky), *connection])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    mine = sorted({c.station for c in stored if c.node == NODE})
    assert printed.rstrip().endswith(f"with {', '.join(mine)}")
    assert_picture(sky, (1600, 900), [skymap.TRACK_COLOUR, skymap.CONTACT_COLOUR])
    schedule = tmp_path / "schedule.png"
    horizon = ("--start", f"{start:%Y-%m-%dT%H:%M:%SZ}", "--end", f"{end:%Y-%m-%dT%H:%M:%SZ}")
    code = main(["schedule", "plot", "--out", str(schedule), *horizon, *connection])
    assert code == 0, capsys.readouterr().err
    assert "0 placement(s)" in capsys.readouterr().out
    shape, _ = pixels(schedule)
    assert shape == gantt.SIZE_PX_DEFAULT


def _document() -> dict[str, Any]:
    """Two nodes, two tenants, one station with two antennas, times in one day."""

    def at(hour: int, minute: int = 0) -> str:
        return datetime(2025, 12, 6, hour, minute, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def placement(request: str, node: str, start: int, end: int, down: int) -> dict[str, Any]:
        return {
            "request": request,
            "node": node,
            "start": at(start),
            "end": at(end),
            "uplink": {"contact": f"c-{node}-up", "at": at(start - 1), "end": at(start - 1, 5)},
            "downlink": [{"contact": f"c-{node}-down", "start": at(down), "end": at(down, 30)}],
        }

    return {
        "horizon": {"start": at(0), "end": at(12)},
        "nodes": [{"id": "1"}, {"id": "2"}, {"id": "3"}],
        "stations": [{"id": "s", "antennas": 2}],
        "contacts": [
            {"id": f"c-{n}-{k}", "node": n, "station": "s", "start": at(h), "end": at(h, 40)}
            for n in ("1", "2")
            for k, h in (("up", 1), ("down", 8))
        ],
        "requests": [{"id": "a", "tenant": "acme"}, {"id": "b", "tenant": "globex"}],
        "placements": [placement("a", "1", 2, 7, 8), placement("b", "2", 3, 4, 8)],
        "rejected": [{"request": "c", "reason": "no downlink contact before deadline"}],
    }


def test_the_view_ranks_nodes_and_counts_antennas() -> None:
    view = gantt.ScheduleView.of(_document())
    assert view.nodes == ["1", "2"]  # the busiest first; node 3 has nothing
    assert view.tenants == ["acme", "globex"]
    assert view.bars["run"]["acme"] == {0: [(2.0, 5.0)]}
    assert view.bars["run"]["globex"] == {1: [(3.0, 1.0)]}
    assert view.counts == {"uplink": 2, "run": 2, "downlink": 2}
    assert (view.placed, view.rejected, view.nodes_total) == (2, 1, 3)
    assert view.stations == ["s"]
    use = view.station_use[0]
    bin_hours = 12 / gantt.TIME_BINS
    # Both downlinks share 08:00-08:30: both antennas; an uplink alone: half of them.
    assert use[int(8.1 / bin_hours)] == 1.0
    assert use[int(1.05 / bin_hours)] == 0.5
    assert use[int(5 / bin_hours)] == 0.0
    clipped = gantt.ScheduleView.of(
        _document(), nodes_max=1, start=datetime(2025, 12, 6, 4, tzinfo=UTC)
    )
    assert clipped.nodes == ["1"]
    assert clipped.bars["run"]["acme"] == {0: [(0.0, 3.0)]}
    with pytest.raises(ValueError, match="end must be after its start"):
        gantt.ScheduleView.of(_document(), start=datetime(2025, 12, 7, tzinfo=UTC))
