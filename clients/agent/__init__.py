"""orbitq.clients.agent: the node agent that runs on (or stands in for) a satellite.

Owns: the sandbox that runs tenants' WebAssembly modules under fuel and limits, the agent's
durable local store, its link to the broker (NodeAgentService over gRPC with the node's
credential), and the loop that pulls tickets, verifies them onboard, runs them, downlinks
results and reports signed usage receipts. Never imports orbitq.services.

Modules: sandbox (the run), isolate (the run in a child process), bundle (the result blob),
calibrate (the fuel rate), store (the local SQLite store), link (the broker), pacer (the
downlink token bucket), datadir (the data directory's files), agent (the loop).
"""
