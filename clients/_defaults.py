"""The SDK's defaults, in a module that imports nothing, so the CLI's argument parser can show
them without loading gRPC (`orbitq --help` stays fast).

Owns: where a client connects and how long it waits by default. Does not own: reading the
ORBITQ_* environment (orbitq.clients._transport, the CLI registry).
"""

from __future__ import annotations

TARGET_DEFAULT = "127.0.0.1:7707"
TIMEOUT_SECONDS_DEFAULT = 10.0
