"""Trace context helpers: W3C ``traceparent`` text in and out, and linked spans.

A command carries the ``traceparent`` of the RPC that sent it, and the ledger
copies it into every event the command appends. Work that handles many
commands or events at once (a group-commit batch, a relay publish batch, a
projection batch) runs in a span of its own, with one span link per distinct
context it serves, because one span cannot be the child of many parents.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

__all__ = [
    "TRACEPARENT_HEADER",
    "current_trace_ids",
    "current_traceparent",
    "get_tracer",
    "linked_span",
    "set_tracer_provider",
    "span_context_of",
]

TRACEPARENT_HEADER = "traceparent"
"""Header (gRPC metadata, NATS message header) that carries a W3C trace context."""

_TRACER_NAME = "smsledger"
_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """Make ``provider`` the one :func:`get_tracer` uses (None: OpenTelemetry's global one).

    Unlike ``opentelemetry.trace.set_tracer_provider`` this can be called more
    than once, so that tests can install a provider with an in-memory exporter.
    """
    global _provider
    _provider = provider


def get_tracer() -> Tracer:
    """Return the ledger's tracer from the active provider."""
    if _provider is not None:
        return _provider.get_tracer(_TRACER_NAME)
    return trace.get_tracer(_TRACER_NAME)


def current_traceparent() -> str | None:
    """Return the ``traceparent`` of the current span; None outside a valid span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT_HEADER)


def caller_context(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context | None:
    """Return a context whose current span is the caller's, from gRPC metadata.

    The span does not record anything: it only lets the caller's
    ``traceparent`` reach events and log lines when no server span is made.
    None when the metadata carries no valid ``traceparent``.
    """
    for key, value in metadata or ():
        if key == TRACEPARENT_HEADER and isinstance(value, str):
            context = _propagator.extract({TRACEPARENT_HEADER: value})
            if trace.get_current_span(context).get_span_context().is_valid:
                return context
            return None
    return None


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """Parse a ``traceparent`` text; None when it is missing or malformed."""
    if not traceparent:
        return None
    context = _propagator.extract({TRACEPARENT_HEADER: traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def current_trace_ids() -> tuple[str, str] | None:
    """Return the current ``(trace id, span id)`` in hex; None outside a valid span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


@contextlib.contextmanager
def linked_span(
    name: str,
    traceparents: Iterable[str | None],
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """Run the block in a new current span linked to every distinct valid context.

    The span starts a trace of its own (it has no parent). The tracer
    provider's span limits cap the number of links (``OTEL_SPAN_LINK_COUNT_LIMIT``);
    links past the cap are dropped. ``ledger.links`` records how many distinct
    contexts the block served.
    """
    links: list[Link] = []
    seen: set[str] = set()
    for text in traceparents:
        if not text or text in seen:
            continue
        seen.add(text)
        span_context = span_context_of(text)
        if span_context is not None:
            links.append(Link(span_context))
    span_attributes: dict[str, AttributeValue] = dict(attributes or {})
    span_attributes["ledger.links"] = len(links)
    with get_tracer().start_as_current_span(
        name,
        context=trace.set_span_in_context(trace.INVALID_SPAN),
        kind=kind,
        links=links,
        attributes=span_attributes,
    ) as span:
        yield span
