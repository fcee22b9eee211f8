"""gRPC servicers: thin translations between protobuf messages and the broker's domain.

Each servicer validates the shape of its request (sizes, formats, enum values), takes the
current principal once, calls one domain operation with it, and converts the result. No rules
live here, and no permission checks: each domain service checks who may call it.
"""
