"""gRPC servicers: thin translations between protobuf messages and the broker's domain.

Each servicer validates the shape of its request (sizes, formats), calls one domain operation
with the current principal, and converts the result. No rules live here.
"""
