"""gRPC server interceptors: one span per RPC and RPC count and latency metrics.

Spans come from ``opentelemetry-instrumentation-grpc``; it records the status
code that ``context.abort(code, ...)`` sets (the ledger never uses
``abort_with_status``, which hides the code from it). That package records no
metrics, so :class:`RpcMetricsInterceptor` times every call itself.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry.context import Context, attach, detach
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.trace import TracerProvider

from ledger.telemetry.tracing import caller_context

__all__ = ["RpcMetricsInterceptor", "tracing_interceptor"]

HEALTH_SERVICE = "grpc.health.v1.Health"

# grpc-stubs make the class generic; at run time it is not subscriptable.
if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor

Record = Callable[[str, str, float], None]
"""Receives the full method name, the status code name and the duration in seconds."""


def tracing_interceptor(provider: TracerProvider) -> grpc.aio.ServerInterceptor[Any, Any]:
    """Return the interceptor that opens a server span per RPC on ``provider``.

    It continues a trace whose ``traceparent`` the client sent in its metadata.
    Health checks get no span: probes call them every few seconds, and the
    instrumentation wraps every response-streaming handler as an async
    generator, which the health service's ``Watch`` (it calls
    ``context.write``) is not.
    """
    interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=filters.negate(filters.service_name(HEALTH_SERVICE))
    )
    return interceptor


def _status_of(context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> str:
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED.name
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        # grpc.aio answers an exception that escapes the handler with UNKNOWN.
        return grpc.StatusCode.UNKNOWN.name
    return grpc.StatusCode.OK.name


class RpcMetricsInterceptor(_ServerInterceptor):
    """Records the duration and status code of every RPC.

    Args:
        record: Called once per finished RPC.
        adopt_caller_trace: Make the caller's ``traceparent`` the current
            (non-recording) span while the handler runs. Set it when no span
            interceptor runs, so that events and log lines still carry the
            caller's trace.
    """

    def __init__(self, record: Record, *, adopt_caller_trace: bool = False) -> None:
        self._record = record
        self._adopt_caller_trace = adopt_caller_trace

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Return the method's handler wrapped so that its duration and status are recorded."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        parent = (
            caller_context(handler_call_details.invocation_metadata)
            if self._adopt_caller_trace
            else None
        )
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary, parent),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary, parent),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream, parent),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(method, handler.stream_stream, parent),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _unary(self, method: str, behavior: Any, parent: Context | None) -> Any:
        async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            error: BaseException | None = None
            token = attach(parent) if parent is not None else None
            try:
                return await behavior(request, context)
            except BaseException as caught:
                error = caught
                raise
            finally:
                if token is not None:
                    detach(token)
                self._record(method, _status_of(context, error), time.perf_counter() - started)

        return timed

    def _streaming(self, method: str, behavior: Any, parent: Context | None) -> Any:
        if not inspect.isasyncgenfunction(behavior):
            # A handler that sends with context.write() is a coroutine function.
            return self._unary(method, behavior, parent)
        # Response streams only read, so they record no trace context, and a
        # context attached across their yields could not be detached safely.

        async def timed(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as caught:
                error = caught
                raise
            finally:
                self._record(method, _status_of(context, error), time.perf_counter() - started)

        return timed
