"""The public surfaces: orbitq.services.requests is exactly what its __all__ says, and the SDK
exports every request model a caller needs (and still nothing of the server)."""

from __future__ import annotations

import subprocess
import sys

import orbitq.clients as clients
import orbitq.services.requests as requests


def test_the_request_service_surface() -> None:
    assert sorted(requests.__all__) == [
        "DEADLINE_AHEAD_SECONDS_MAX",
        "GRACE_SECONDS",
        "LIVE_STATES",
        "NAME_CHARS_MAX",
        "PLACED_STATES",
        "QuoteResult",
        "RequestSpec",
        "RequestState",
        "Requests",
        "StoredRequest",
        "TERMINAL_STATES",
        "Transition",
        "WATCHES_MAX",
        "WATCHES_PER_TENANT_MAX",
        "WORKLOAD_CHARS_MAX",
    ]
    for name in requests.__all__:
        assert hasattr(requests, name), name


def test_the_sdk_exports_the_request_models_without_the_server() -> None:
    for name in (
        "Amounts",
        "DownlinkSegment",
        "Placement",
        "PlacementContact",
        "PlacementReason",
        "Quote",
        "RequestSpec",
        "ServiceRequest",
        "Submitted",
        "Transition",
    ):
        assert name in clients.__all__, name
        assert hasattr(clients, name), name
    probe = (
        "import sys, orbitq.clients, orbitq.clients.schedule, orbitq.clients.cli.requests;"
        " print(sorted(m for m in sys.modules if m.startswith(('orbitq.services', 'sqlmodel'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert loaded == "[]"
