"""The public surface of orbitq.services.scheduler is exactly what __all__ says."""

from __future__ import annotations

import orbitq.services.scheduler as scheduler


def test_public_surface() -> None:
    assert sorted(scheduler.__all__) == [
        "Code",
        "Contact",
        "Cost",
        "CycleResult",
        "DISPLACEMENTS_PER_CYCLE_MAX",
        "DownlinkSegment",
        "NODE_STATES",
        "Node",
        "NodeState",
        "PRIORITY_MAX",
        "Placement",
        "Profile",
        "Quote",
        "Rejection",
        "Request",
        "Scheduler",
        "SchedulerConfig",
        "Station",
        "Status",
        "UPLINK_NOTICE_MARGIN_SECONDS",
        "Unplaced",
        "Uplink",
        "default_profile",
        "downlink_seconds",
        "placement_cost",
        "quote",
        "rfc3339",
        "schedule_document",
        "uplink_seconds",
    ]
    for name in scheduler.__all__:
        assert hasattr(scheduler, name), name
