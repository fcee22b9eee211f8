"""The node agent's exception tree.

    AgentError                 the root: everything orbitq.clients.agent raises on purpose
    ├── ModuleRefusedError          the workload is not a WASI preview 1 command we run (bad magic,
    │                          invalid, a host import outside wasi_snapshot_preview1, no _start)
    ├── SandboxError         the sandbox itself failed (not the workload's fault): the run
    │                          becomes an ABORTED receipt, an operator fault
    └── DataDirError           the agent's data directory is missing, unreadable or unsafe

Broker calls raise the SDK's BrokerCallError subclasses (orbitq.clients.errors); the agent's
link decides which of those are expected (outside a contact) and which are failures.
"""

from __future__ import annotations

from orbitq.clients.errors import OrbitqError


class AgentError(OrbitqError):
    """Root of the node agent's errors."""


class ModuleRefusedError(AgentError):
    """The module is not one the sandbox runs; the message says why, in one line."""


class SandboxError(AgentError):
    """The sandbox could not run the module for a reason outside the workload."""


class DataDirError(AgentError):
    """The agent's data directory cannot be used as it is."""
