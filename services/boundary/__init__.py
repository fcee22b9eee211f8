"""The gRPC boundary's checks that come before any method runs.

Owns: turning request bytes that do not decode into a refusal naming the field (`decoding`),
the generic range check of every decoded number against what the databases store (`ranges`),
and the admission gate that bounds long-lived streams so they cannot starve unary calls
(`admission`). The interceptors (orbitq.services.interceptors) apply them; the one table from
errors to status codes stays there.

Does not own: any method's own validation (servicers and domain services).
"""
