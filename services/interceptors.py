"""The gRPC boundary: the interceptor chain every call passes through, outermost first:

1. logging — one line per call: method, caller's key id, status, milliseconds;
2. error mapping — the one table from domain errors to status codes (`STATUS_OF`); anything
   unexpected becomes INTERNAL with an incident id, logged with its traceback, never UNKNOWN.
   It also makes each method's deserializer tolerant, so a request that does not decode or
   carries a number no column holds is INVALID_ARGUMENT naming the field (services/boundary),
   and a call whose client went away is no incident;
3. admission — long-lived streams are counted in total and per peer and refused beyond the
   caps (orbitq.services.boundary.admission), keeping workers free for unary calls;
4. authentication — `authorization: Bearer <api key>` to a Principal for the call. Only the
   standard health and reflection services are open, so probes and grpcurl work, and
   NodeAgentService.EnrollNode, whose enrollment token is its credential (its servicer checks
   it: a new agent has no API key yet).

Does not own: what a method does (servicers), or the key store (orbitq.services.auth).
"""

from __future__ import annotations

import concurrent.futures
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import Message

from orbitq.ledger.store.writer import WriterOverloadedError, WriterStoppedError
from orbitq.services.auth import (
    Authenticator,
    reset_current_principal,
    set_current_principal,
)
from orbitq.services.boundary import decoding
from orbitq.services.boundary.admission import StreamGate
from orbitq.services.errors import (
    AlreadyExistsError,
    BrokerError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)

log = logging.getLogger("orbitq.rpc")

# The one table from domain errors to gRPC status codes.
STATUS_OF: dict[type[Exception], grpc.StatusCode] = {
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    WriterOverloadedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    WriterStoppedError: grpc.StatusCode.UNAVAILABLE,
    NotImplementedError: grpc.StatusCode.UNIMPLEMENTED,
}

# Bound on the cached wrapped handlers (one per method and interceptor in practice).
WRAPPED_HANDLERS_MAX = 1024

OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Methods that authenticate by what they carry, not by an API key.
OPEN_METHODS = frozenset({"/orbitq.v1.NodeAgentService/EnrollNode"})

Behavior = Callable[[Any, grpc.ServicerContext], Any]

if TYPE_CHECKING:
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _ServerInterceptor = grpc.ServerInterceptor[Any, Any]
else:
    _Handler = grpc.RpcMethodHandler
    _ServerInterceptor = grpc.ServerInterceptor


def _rewrap(
    handler: _Handler, wrap: Callable[[Behavior, bool], Behavior], deserializer: Any
) -> Any:
    """The same handler with its behaviour wrapped (unary or server-streaming responses) and
    `deserializer` in place of its own."""
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary, False),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, True),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, False),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(
        wrap(handler.stream_stream, True),
        request_deserializer=deserializer,
        response_serializer=handler.response_serializer,
    )


class _Interceptor(_ServerInterceptor):
    """Wraps each method's handler once and reuses the wrapped handler for every call (the
    wrappers read per-call facts from the ServicerContext), instead of building new handler
    objects and closures for each call in each interceptor."""

    def __init__(self) -> None:
        self._wrapped: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], _Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        key = (handler_call_details.method, handler)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            method = handler_call_details.method
            wrapped = _rewrap(
                handler,
                lambda behavior, streaming: self.wrap(method, behavior, streaming),
                self.wrap_deserializer(handler.request_deserializer),
            )
            with self._lock:
                if len(self._wrapped) >= WRAPPED_HANDLERS_MAX:
                    self._wrapped.clear()
                self._wrapped[key] = wrapped
        return wrapped

    def wrap(self, method: str, behavior: Behavior, streaming: bool) -> Behavior:
        raise NotImplementedError

    def wrap_deserializer(self, deserializer: Any) -> Any:
        return deserializer


class LoggingInterceptor(_Interceptor):
    def wrap(self, method: str, behavior: Behavior, streaming: bool) -> Behavior:

        def finish(context: grpc.ServicerContext, started: float) -> None:
            code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
            elapsed_ms = (time.perf_counter() - started) * 1000
            level = logging.INFO if code is grpc.StatusCode.OK else logging.WARNING
            log.log(level, "%s %s %.1fms", method, getattr(code, "name", code), elapsed_ms)

        if streaming:

            def logged_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started = time.perf_counter()
                try:
                    yield from behavior(request, context)
                finally:
                    finish(context, started)

            return logged_stream

        def logged(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                return behavior(request, context)
            finally:
                finish(context, started)

        return logged


def abort_for(error: Exception, context: grpc.ServicerContext, method: str) -> None:
    """Abort the call with the status of `error` (always raises)."""
    for kind in type(error).__mro__:
        code = STATUS_OF.get(kind)
        if code is not None:
            message = error.message if isinstance(error, BrokerError) else str(error)
            if isinstance(error, NotImplementedError):
                message = f"{method} is not implemented in this broker version"
            context.abort(code, message)
    if isinstance(error, concurrent.futures.TimeoutError):
        context.abort(grpc.StatusCode.UNAVAILABLE, "the ledger is busy; retry with the same id")
    incident = secrets.token_hex(6)
    log.error("internal error %s in %s", incident, method, exc_info=error)
    context.abort(
        grpc.StatusCode.INTERNAL, f"internal error {incident}; the broker logged its details"
    )


class ErrorMappingInterceptor(_Interceptor):
    """Also owns the requests refused before their method runs: each method's deserializer is
    made tolerant (orbitq.services.boundary.decoding), and what it refused is raised here as
    InvalidArgumentError, so it goes through the one table like every other error."""

    def wrap_deserializer(self, deserializer: Any) -> Any:
        return decoding.tolerant(deserializer)

    def wrap(self, method: str, behavior: Behavior, streaming: bool) -> Behavior:

        if streaming:

            def mapped_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                try:
                    yield from behavior(_accepted(request), context)
                except Exception as error:
                    if _is_abort(error, context):
                        raise
                    if _client_gone(error, context):
                        return
                    abort_for(error, context, method)

            return mapped_stream

        def mapped(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behavior(_accepted(request), context)
            except Exception as error:
                if _is_abort(error, context):
                    raise
                if _client_gone(error, context):
                    return None
                abort_for(error, context, method)

        return mapped


def _accepted(request: Any) -> Any:
    """The request as decoded, or InvalidArgumentError for one the deserializer refused; for a
    stream of requests, the stream checked message by message."""
    if isinstance(request, decoding.Refused):
        raise InvalidArgumentError(request.reason)
    if isinstance(request, Message):
        return request
    return _accepted_each(request)


def _accepted_each(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, decoding.Refused):
            raise InvalidArgumentError(request.reason)
        yield request


def _client_gone(error: Exception, context: grpc.ServicerContext) -> bool:
    # The client cancelled or its deadline passed: a stream's request iterator then raises a
    # bare grpc.RpcError. Nobody is listening for a status, and it is no incident. (Any other
    # exception is still mapped, and logged if unexpected: a bug is a bug, listener or not.)
    return isinstance(error, grpc.RpcError) and not context.is_active()


def _is_abort(error: Exception, context: grpc.ServicerContext) -> bool:
    # context.abort raises a bare Exception after setting a non-OK code: let it through.
    code = context.code()  # type: ignore[attr-defined]
    return type(error) is Exception and code not in (None, grpc.StatusCode.OK)


def _authorization(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class AdmissionInterceptor(_Interceptor):
    """Long-lived streams pass the gate (orbitq.services.boundary.admission) before anything
    else of theirs runs, authenticated or not: beyond its caps they are refused at once."""

    def __init__(self, gate: StreamGate) -> None:
        super().__init__()
        self.gate = gate

    def wrap(self, method: str, behavior: Behavior, streaming: bool) -> Behavior:
        if not streaming:
            return behavior
        gate = self.gate

        def admitted_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            release = gate.admit(context.peer())
            context.add_callback(release)  # the RPC's end, even if this generator is never closed
            try:
                yield from behavior(request, context)
            finally:
                release()

        return admitted_stream


class AuthInterceptor(_Interceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._authenticator = authenticator

    def wrap(self, method: str, behavior: Behavior, streaming: bool) -> Behavior:
        if method.startswith(OPEN_METHOD_PREFIXES) or method in OPEN_METHODS:
            return behavior
        authenticator = self._authenticator

        if streaming:

            def authed_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                token = set_current_principal(authenticator.authenticate(_authorization(context)))
                try:
                    yield from behavior(request, context)
                finally:
                    reset_current_principal(token)

            return authed_stream

        def authed(request: Any, context: grpc.ServicerContext) -> Any:
            token = set_current_principal(authenticator.authenticate(_authorization(context)))
            try:
                return behavior(request, context)
            finally:
                reset_current_principal(token)

        return authed
