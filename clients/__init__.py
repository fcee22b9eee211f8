"""orbitq.clients: the Python SDK, the `orbitq` CLI and the demo.

Owns: talking to a broker over gRPC, mapping status codes to typed exceptions, client-side
verification of the signed ledger. Never imports orbitq.services: importing the SDK does not
pull in SQLModel or the server.
"""
