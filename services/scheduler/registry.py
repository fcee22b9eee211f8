"""Wires the plugins into a Profile: which run at each extension point, in which order.

Owns: `default_profile()` (fresh plugin instances: reserve plugins hold per-scheduler state)
and the default score weights. A caller (the benchmark's baselines, a test) builds another
`Profile` from the same plugins to change behaviour without touching the runtime.
"""

from __future__ import annotations

from orbitq.services.scheduler.framework import Profile, ScorePlugin
from orbitq.services.scheduler.plugins.capacity import CapacityPlugin
from orbitq.services.scheduler.plugins.deadline import DeadlinePlugin
from orbitq.services.scheduler.plugins.downlink import DownlinkPlugin
from orbitq.services.scheduler.plugins.earliest_completion import EarliestCompletionPlugin
from orbitq.services.scheduler.plugins.in_time import InTimePlugin
from orbitq.services.scheduler.plugins.just_in_time import JustInTimePlugin
from orbitq.services.scheduler.plugins.node_agent import NodeAgentPlugin
from orbitq.services.scheduler.plugins.node_resources import NodeResourcesPlugin
from orbitq.services.scheduler.plugins.node_selector import NodeSelectorPlugin
from orbitq.services.scheduler.plugins.node_state import NodeStatePlugin
from orbitq.services.scheduler.plugins.packing import PackingPlugin
from orbitq.services.scheduler.plugins.station_antennas import StationAntennasPlugin
from orbitq.services.scheduler.plugins.station_selector import StationSelectorPlugin
from orbitq.services.scheduler.plugins.storage_hold import StorageHoldPlugin
from orbitq.services.scheduler.plugins.uplink import UplinkPlugin

EARLIEST_COMPLETION_WEIGHT = 2
PACKING_WEIGHT = 1


def default_scores() -> tuple[tuple[ScorePlugin, int], ...]:
    return (
        (EarliestCompletionPlugin(), EARLIEST_COMPLETION_WEIGHT),
        (PackingPlugin(), PACKING_WEIGHT),
    )


def default_profile(
    scores: tuple[tuple[ScorePlugin, int], ...] | None = None, *, agents_required: bool = False
) -> Profile:
    """The standard plugin set; `scores` replaces the score plugins and weights;
    `agents_required` adds the `node_agent` filter (usage receipts complete work)."""
    node_selector = NodeSelectorPlugin()
    node_resources = NodeResourcesPlugin()
    station_selector = StationSelectorPlugin()
    capacity = CapacityPlugin()
    antennas = StationAntennasPlugin()
    return Profile(
        pre_filters=(node_resources, DeadlinePlugin(), node_selector, station_selector, antennas),
        filters=(
            NodeStatePlugin(),
            *((NodeAgentPlugin(),) if agents_required else ()),
            node_selector,
            node_resources,
            station_selector,
            InTimePlugin(),
        ),
        fits=(UplinkPlugin(), capacity, DownlinkPlugin(), StorageHoldPlugin(), JustInTimePlugin()),
        scores=default_scores() if scores is None else scores,
        reserves=(capacity, antennas),
    )
