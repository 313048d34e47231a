"""Traces and metrics with OpenTelemetry.

This package is the only part of ``src/`` that imports ``opentelemetry``; the
rest of the code calls the helpers below or receives plain callables.

- :class:`Telemetry` builds the tracer and meter providers of one process,
  serves Prometheus ``/metrics`` and gives the gRPC interceptors and the
  group-commit hooks.
- :func:`linked_span` runs a batch in a span linked to the contexts of the
  commands or events it handles (relay publishes, projection batches).
- :func:`current_traceparent` returns the W3C ``traceparent`` of the current span.
"""

from __future__ import annotations

from ledger.telemetry.names import METRICS, PROMETHEUS_NAMES, MetricSpec
from ledger.telemetry.setup import Telemetry, TelemetryOptions, split_address
from ledger.telemetry.tracing import (
    TRACEPARENT_HEADER,
    current_trace_ids,
    current_traceparent,
    linked_span,
    span_context_of,
)

__all__ = [
    "METRICS",
    "PROMETHEUS_NAMES",
    "TRACEPARENT_HEADER",
    "MetricSpec",
    "Telemetry",
    "TelemetryOptions",
    "current_trace_ids",
    "current_traceparent",
    "linked_span",
    "span_context_of",
    "split_address",
]
