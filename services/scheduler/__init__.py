"""orbitq.services.scheduler: placing service requests onto orbital nodes.

Owns: the plugin framework (filter, score, reserve/unreserve), the registry, the runtime that
runs one cycle, node timelines and contact/antenna bookkeeping. Pure: it works on in-memory
models handed to it and never touches the database or the ledger.
"""
