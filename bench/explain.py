"""What one explanation (or a quote with its ETA) costs the broker.

In-process on SQLite, simulated clock: the first 500 satellites of the bundled Starlink
snapshot, every bundled ground station, 12 h of computed contacts, 200 requests placed by a
real cycle; then `Explainer.quote(..., eta=True)` for a spec that fits now (one probe), the
same again (the contacts are cached per world version), and one that fits nowhere within its
station selector (the deadline search and the station probe). Figures: milliseconds of each,
and what each copy held (nodes, contacts, placements, probes).

    .venv/bin/python -m bench.explain [SATELLITES] [HOURS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import peak_rss_mb, publish
from orbitq.ledger.model import Kind
from orbitq.services.auth import Principal
from orbitq.services.broker import Broker, init_data_dir
from orbitq.services.clock import SimulatedClock
from orbitq.services.config import load_config
from orbitq.services.constellation import NodeImport
from orbitq.services.identity.api_keys import Role
from orbitq.services.orbits import bundled_path
from orbitq.services.quota import new_operation_id
from orbitq.services.requests import RequestSpec

EPOCH = datetime(2025, 12, 6, tzinfo=UTC)
T0 = int(EPOCH.timestamp())
OPERATOR = Principal(key_id="bench-operator", role=Role.OPERATOR)
ACME = Principal(key_id="bench-acme", role=Role.TENANT, tenant="acme")
PLACED = 200


def spec(deadline: int, run: int = 600, **selectors: Any) -> RequestSpec:
    return RequestSpec(
        name="job",
        workload="image:v1",
        cpu_millicores=1000,
        run_seconds=run,
        storage_mb=500,
        input_mb=0,
        output_mb=200,
        not_before=T0,
        deadline=deadline,
        priority=0,
        **selectors,
    )


def main(satellites: int = 500, hours: float = 12.0) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        url = f"sqlite:///{Path(scratch) / 'orbitq.db'}"
        clock = SimulatedClock(EPOCH)
        init_data_dir(data, origin="orbitq.bench/ledger", db_url=url, clock=clock)
        config = replace(
            load_config(data, db_url=url), settlement="plan", checkpoint_interval_seconds=3600
        )
        broker = Broker(config, clock)
        broker.writer.start()
        try:
            lines = bundled_path("starlink").read_text(encoding="ascii").splitlines()
            text = "\n".join(lines[: 3 * satellites]) + "\n"
            broker.constellation.import_nodes(OPERATOR, NodeImport(text=text))
            stations = bundled_path("ground-stations").read_text(encoding="utf-8")
            broker.constellation.import_stations(OPERATOR, stations)
            broker.constellation.refresh_contacts(horizon_hours=hours)
            broker.tenants.create(OPERATOR, "acme", "")
            plenty = {Kind.CPU: 10**9, Kind.STORAGE: 10**9, Kind.LINK: 10**8}
            broker.quota.mint(OPERATOR, "acme", plenty, new_operation_id())
            end = T0 + int(hours * 3600)
            for _ in range(PLACED):
                broker.requests.submit(ACME, spec(end - 3600, run=1800))
            broker.scheduling.run_cycle()
            result: dict[str, Any] = {"satellites": satellites, "hours": hours}
            cases = (
                ("first", spec(T0 + 6 * 3600)),
                ("cached", spec(T0 + 6 * 3600)),
                ("search", spec(T0 + 1800, station_ids=("svalbard",))),
            )
            for label, wanted in cases:
                started = time.perf_counter()
                _, explanation = broker.explainer.quote(ACME, wanted, "", eta=True)
                elapsed = time.perf_counter() - started
                assert explanation is not None
                eta = explanation.eta
                result[f"{label}_ms"] = round(elapsed * 1000, 1)
                result[f"{label}_probes"] = eta.probes
                result["contacts"] = eta.contacts
                result["placements"] = eta.placements
                result["nodes"] = eta.nodes
            result["peak_rss_mb"] = round(peak_rss_mb(), 1)
            publish("explain", result)
        finally:
            broker.scheduling.close()
            broker.requests.close()
            broker.writer.stop()
            broker.engine.dispose()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(int(arguments[0]) if arguments else 500, float(arguments[1]) if len(arguments) > 1 else 12)
