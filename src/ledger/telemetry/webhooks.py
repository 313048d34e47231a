"""Spans and latency of the webhook endpoint's requests.

Every request on ``/hooks/...`` runs in a server span named after its route
template, such as ``POST /hooks/{connection}``. The span is current while the
callback waits for its commit, so the group commit stamps the span's
``traceparent`` on the callback's command, and the batch span links to it as
it does to RPC spans.

The request path is never recorded, because for Kannel, Jasmin and Infobip it
contains the connection's secret token. The span carries the route template
and the connection name instead. Callers are outside providers, so a
``traceparent`` header they send becomes a span link, not the span's parent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from ledger.telemetry.tracing import TRACEPARENT_HEADER, span_context_of

__all__ = ["HOOKS_PREFIX", "UNKNOWN_CONNECTION", "webhook_middleware"]

HOOKS_PREFIX = "/hooks/"
"""Path prefix of the callback routes; other paths (``/healthz``) get no span."""

UNKNOWN_CONNECTION = "unknown"
"""Connection label of a request naming no configured connection, which keeps
the label set bounded whatever paths callers try."""


def webhook_middleware(
    tracer: Tracer,
    record: Callable[[str, int, float], None],
    connections: Collection[str],
    *,
    spans: bool = True,
) -> Middleware:
    """Return an aiohttp middleware that traces and times each callback request.

    Args:
        tracer: Tracer of the process's tracer provider.
        record: Called with the connection label, the HTTP status code and
            the seconds the request took.
        connections: The connections with a webhook route.
        spans: Open a span per request. Without span recording a span only
            costs time, so the middleware then just times the request.
    """
    known = frozenset(connections)

    @web.middleware
    async def time_callback(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(HOOKS_PREFIX):
            return await handler(request)
        connection = request.match_info.get("connection", "")
        label = connection if connection in known else UNKNOWN_CONNECTION
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            record(label, status, time.monotonic() - started)

    @web.middleware
    async def trace_callback(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(HOOKS_PREFIX):
            return await handler(request)
        connection = request.match_info.get("connection", "")
        label = connection if connection in known else UNKNOWN_CONNECTION
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "/hooks/{connection}"
        attributes: dict[str, AttributeValue] = {
            "http.request.method": request.method,
            "http.route": route,
            "ledger.connection": label,
        }
        caller = span_context_of(request.headers.get(TRACEPARENT_HEADER))
        started = time.monotonic()
        # aiohttp responds 500 to an exception that escapes the handler.
        status = 500
        with tracer.start_as_current_span(
            f"{request.method} {route}",
            context=trace.set_span_in_context(trace.INVALID_SPAN),
            kind=SpanKind.SERVER,
            links=[Link(caller)] if caller is not None else [],
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as error:
                status = error.status
                raise
            finally:
                span.set_attribute("http.response.status_code", status)
                # Only a 5xx is the server's failure; a 4xx is the caller's.
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                record(label, status, time.monotonic() - started)

    return trace_callback if spans else time_callback
