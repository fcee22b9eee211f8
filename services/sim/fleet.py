"""The simulated fleet: which satellites of an element-set file carry computers, and which.

Owns: a seeded choice of `--nodes` satellites (a sample spread over the whole file, so the
fleet spans orbital planes rather than one launch batch), the hardware each is given (a mix of
three computer sizes), and the ImportNodes input that says so (CelesTrak OMM JSON of the chosen
element sets, and the per-node capacities CSV). The start of the simulation — the newest
epoch among the chosen element sets, rounded up to the minute, where SGP4 is most accurate —
is decided here too.

Does not own: parsing element sets (orbitq.services.orbits) or importing (the constellation).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from orbitq.services.constellation import Capacity, NodeImport
from orbitq.services.orbits import ElementSet, omm_record


@dataclass(frozen=True)
class Hardware:
    name: str
    weight: int
    capacity: Capacity


# Small, standard and compute-heavy payload computers (uplink 20 Mbit/s on all).
HARDWARE: tuple[Hardware, ...] = (
    Hardware("small", 20, Capacity(2_000, 32_000, 100, 20)),
    Hardware("standard", 55, Capacity(4_000, 64_000, 200, 20)),
    Hardware("compute", 25, Capacity(8_000, 128_000, 400, 20)),
)


@dataclass(frozen=True)
class Fleet:
    elements: tuple[ElementSet, ...]
    capacity: dict[int, Capacity]  # by NORAD id
    start: datetime

    def node_import(self) -> NodeImport:
        records = [omm_record(element) for element in self.elements]
        rows = ["norad_id,cpu_millicores,storage_mb,downlink_mbps,uplink_mbps"]
        for norad, c in sorted(self.capacity.items()):
            rows.append(
                f"{norad},{c.cpu_millicores},{c.storage_mb},{c.downlink_mbps},{c.uplink_mbps}"
            )
        return NodeImport(
            text=json.dumps(records), fmt="omm-json", capacities_csv="\n".join(rows) + "\n"
        )

    @property
    def slowest_downlink_mbps(self) -> int:
        return min(capacity.downlink_mbps for capacity in self.capacity.values())


def choose_fleet(elements: Sequence[ElementSet], nodes: int, seed: int) -> Fleet:
    """`nodes` of `elements` (1 <= nodes <= len(elements); the caller checks), in file order."""
    assert 1 <= nodes <= len(elements)
    rng = random.Random(seed)  # noqa: S311 (a seeded choice, not a secret)
    chosen = sorted(rng.sample(range(len(elements)), nodes))
    picked = tuple(elements[index] for index in chosen)
    weights = [hardware.weight for hardware in HARDWARE]
    capacity = {
        element.norad_id: rng.choices(HARDWARE, weights=weights)[0].capacity for element in picked
    }
    newest = max(element.epoch for element in picked)
    start = newest.replace(second=0, microsecond=0)
    if start < newest:
        start += timedelta(minutes=1)
    return Fleet(picked, capacity, start)
