"""orbitq.v1: the gRPC contract, generated from proto/orbitq/v1/*.proto (committed, never edited).

Regenerate with `make proto`; `make proto-check` fails when this code drifts from the protos.
"""
