"""The outermost interceptor: a request id for every call, and the RPC metrics.

Owns: setting `current_request_id` for the call (so every log line written while it runs
carries it, the `orbitq.rpc` line included), returning it to the caller as `x-request-id`
trailing metadata, and — when the broker serves metrics — counting each call by method and
status and timing it (`RpcMetrics`). Does not own: the metrics' names (metrics.py) or the rest
of the chain (orbitq.services.interceptors).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc

from orbitq.services.interceptors import Behavior, _Interceptor
from orbitq.services.observability.metrics import RpcMetrics
from orbitq.services.observability.request_ids import (
    REQUEST_ID_METADATA,
    current_request_id,
    request_id_from,
)


class ObservabilityInterceptor(_Interceptor):
    def __init__(self, metrics: RpcMetrics | None = None) -> None:
        super().__init__()
        self._metrics = metrics

    def wrap(self, method: str, behavior: Behavior, streaming: bool) -> Behavior:
        metrics = self._metrics
        labels = metrics.labels_of(method) if metrics is not None else ("", "")

        def begin(context: grpc.ServicerContext) -> tuple[Any, float]:
            request_id = request_id_from(context.invocation_metadata())
            token = current_request_id.set(request_id)
            # Trailing, not initial, metadata: it rides with the status, costing no extra write.
            context.set_trailing_metadata(((REQUEST_ID_METADATA, request_id),))
            if metrics is not None:
                metrics.started(labels)
            return token, time.perf_counter()

        def end(context: grpc.ServicerContext, token: Any, started: float) -> None:
            if metrics is not None:
                code = context.code() or grpc.StatusCode.OK  # type: ignore[attr-defined]
                metrics.finished(labels, code, time.perf_counter() - started)
            try:
                current_request_id.reset(token)
            except ValueError:  # a stream finished in another context than it began
                current_request_id.set(None)

        if streaming:

            def observed_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                token, started = begin(context)
                try:
                    yield from behavior(request, context)
                finally:
                    end(context, token, started)

            return observed_stream

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            token, started = begin(context)
            try:
                return behavior(request, context)
            finally:
                end(context, token, started)

        return observed
