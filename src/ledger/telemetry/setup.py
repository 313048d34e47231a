"""Tracer and meter providers of one process, and the hooks that feed them.

Exporters:

- Traces go to OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set. Otherwise nothing is
  exported, but spans are still made so that trace ids reach logs and events.
- Metrics are served for Prometheus on ``/metrics`` when a metrics address is
  given, and pushed to OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
  ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``) is set; both can run at once.

The OpenTelemetry SDK reads its other standard variables itself
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_SPAN_LINK_COUNT_LIMIT``, ...).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

import grpc
from aiohttp.typedefs import Middleware
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import CollectorRegistry, start_http_server

from ledger.application.commands import Command
from ledger.telemetry import names
from ledger.telemetry.interceptors import RpcMetricsInterceptor, tracing_interceptor
from ledger.telemetry.metrics import GaugeValues, LedgerMetrics, metric_views
from ledger.telemetry.probes import Poller, Probe, count_orphans, projection_lags, relay_lags
from ledger.telemetry.tracing import current_traceparent, linked_span, set_tracer_provider
from ledger.telemetry.webhooks import webhook_middleware

if TYPE_CHECKING:
    from ledger.application.committer import GroupCommitter
    from ledger.relay.relay import Relay
    from ledger.settings import Settings
    from ledger.storage.store import LedgerStore
    from ledger.webhooks.metrics import WebhookMetrics
    from projections.worker import ProjectionWorker

__all__ = ["Telemetry", "TelemetryOptions", "split_address"]

logger = logging.getLogger(__name__)

DEFAULT_LINK_LIMIT = 1024
"""Span links kept per span unless ``OTEL_SPAN_LINK_COUNT_LIMIT`` sets another limit.

The SDK's default of 128 would drop most links of a full group-commit batch
(``commit_max_batch`` is 1000 by default).
"""


def split_address(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[V6]:PORT`` for IPv6) into host and port.

    Raises:
        ValueError: The address has no port or the port is not a number.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} has no port: use HOST:PORT such as 127.0.0.1:9464")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class TelemetryOptions:
    """Reporting options of one process.

    Attributes:
        service_name: ``service.name`` unless ``OTEL_SERVICE_NAME`` is set.
        delivery_window_seconds: Sliding window of the delivery ratio gauge.
        poll_interval_seconds: Refresh period of gauges read from the database.
        span_processors: Extra span processors (tests add an in-memory exporter).
        metric_readers: Extra metric readers.
        environ: Where the ``OTEL_*`` variables are read; the process environment by default.
    """

    service_name: str = "smsledger"
    delivery_window_seconds: float = 900.0
    poll_interval_seconds: float = 15.0
    span_processors: Sequence[SpanProcessor] = ()
    metric_readers: Sequence[MetricReader] = ()
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def _otlp_wanted(environ: Mapping[str, str], signal: str) -> bool:
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    )


class Telemetry:
    """Traces and metrics of one process.

    Args:
        options: Reporting options.
    """

    def __init__(self, options: TelemetryOptions | None = None) -> None:
        self.options = options or TelemetryOptions()
        environ = self.options.environ
        attributes = (
            {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: self.options.service_name}
        )
        self.resource = Resource.create(attributes)

        limits = SpanLimits(
            max_links=None if environ.get("OTEL_SPAN_LINK_COUNT_LIMIT") else DEFAULT_LINK_LIMIT
        )
        # Spans that nothing exports only cost CPU on every RPC, so unless a
        # processor or OTLP endpoint is configured (or OTEL_TRACES_SAMPLER says
        # otherwise) they are not recorded; trace ids still propagate.
        exports = bool(self.options.span_processors) or _otlp_wanted(environ, "TRACES")
        self.records_spans = exports or bool(environ.get("OTEL_TRACES_SAMPLER"))
        sampler = None if self.records_spans else ALWAYS_OFF
        self.tracer_provider = TracerProvider(
            resource=self.resource, span_limits=limits, sampler=sampler
        )
        for processor in self.options.span_processors:
            self.tracer_provider.add_span_processor(processor)
        if _otlp_wanted(environ, "TRACES"):
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))

        self.registry = CollectorRegistry()
        readers: list[MetricReader] = [
            PrometheusMetricReader(registry=self.registry),
            *self.options.metric_readers,
        ]
        if _otlp_wanted(environ, "METRICS"):
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        self.meter_provider = MeterProvider(
            resource=self.resource, metric_readers=readers, views=metric_views()
        )
        self.metrics = LedgerMetrics(
            self.meter_provider.get_meter("smsledger"), self.options.delivery_window_seconds
        )
        self.poller = Poller(self.options.poll_interval_seconds, self._count_probe_error)
        self._http: WSGIServer | None = None

    @classmethod
    def from_settings(cls, settings: Settings, service_name: str) -> Telemetry:
        """Build the telemetry of a process that runs with ``settings``."""
        return cls(
            TelemetryOptions(
                service_name=service_name,
                delivery_window_seconds=settings.delivery_rate_window_seconds,
                poll_interval_seconds=settings.metrics_poll_interval_seconds,
            )
        )

    # ------------------------------------------------------------ lifecycle

    def activate(self) -> None:
        """Make this process's helpers (relay and projection spans) use this tracer provider."""
        set_tracer_provider(self.tracer_provider)

    def start_metrics_server(self, address: str) -> int:
        """Serve ``/metrics`` on ``address`` (``HOST:PORT``; port 0 picks one); return the port.

        Raises:
            ValueError: The address has no port.
            OSError: The address cannot be bound.
        """
        host, port = split_address(address)
        try:
            server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            raise OSError(
                f"cannot serve metrics on {address}: {error}; set SMSLEDGER_METRICS_ADDRESS to "
                "a free HOST:PORT, or to an empty value to turn the endpoint off"
            ) from error
        self._http = server
        bound = int(server.server_port)
        logger.info("metrics endpoint listening", extra={"address": f"{host}:{bound}"})
        return bound

    async def start(self) -> None:
        """Start refreshing the gauges read from the database."""
        await self.poller.start()

    async def start_process(self, metrics_address: str) -> None:
        """Set up a command's process: activate, serve ``/metrics`` unless the
        address is empty, and start refreshing gauges.

        Call it on the event loop after the ``watch_*`` calls; end with :meth:`close`.
        """
        self.activate()
        if metrics_address:
            self.start_metrics_server(metrics_address)
        await self.start()

    async def close(self) -> None:
        """Stop refreshing gauges, then :meth:`shutdown`."""
        await self.stop()
        self.shutdown()

    async def stop(self) -> None:
        """Stop refreshing gauges."""
        await self.poller.stop()

    def shutdown(self) -> None:
        """Stop the endpoint, flush exporters and release the providers."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        set_tracer_provider(None)

    # ------------------------------------------------------------- gRPC

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
        """Return the span interceptor (when spans are recorded), then the RPC metrics one.

        Without span recording the span interceptor would only cost time on
        every call, so it is left out and the metrics interceptor makes the
        caller's ``traceparent`` current instead: events and log lines still
        carry the caller's trace.
        """
        if not self.records_spans:
            return [RpcMetricsInterceptor(self.metrics.record_rpc, adopt_caller_trace=True)]
        metrics = RpcMetricsInterceptor(self.metrics.record_rpc)
        return [tracing_interceptor(self.tracer_provider), metrics]

    # ------------------------------------------------------- group commit

    @staticmethod
    def trace_context() -> str | None:
        """Return the caller's ``traceparent``; the committer stamps it on commands."""
        return current_traceparent()

    def around_batch(
        self, execute: Callable[[Sequence[Command]], list[Any]], commands: Sequence[Command]
    ) -> list[Any]:
        """Apply a batch inside a span linked to each command's RPC span, then count outcomes.

        Runs on the committer's worker thread.
        """
        with linked_span(
            "ledger.commit.batch",
            (command.trace_context for command in commands),
            {"ledger.batch.commands": len(commands)},
        ):
            outcomes = execute(commands)
        self.metrics.record_outcomes(commands, outcomes)
        return outcomes

    def watch_committer(self, committer: GroupCommitter) -> None:
        """Export the committer's queue depth and refusals."""

        def observe_queued(options: CallbackOptions) -> list[Observation]:
            return [Observation(committer.queued)]

        self.metrics.meter.create_observable_gauge(
            names.COMMIT_QUEUED.name,
            callbacks=[observe_queued],
            unit=names.COMMIT_QUEUED.unit,
            description=names.COMMIT_QUEUED.description,
        )
        self.metrics.observe_counter(
            names.COMMIT_REJECTED,
            lambda: [
                ({"reason": "queue_full"}, float(committer.stats.rejected)),
                ({"reason": "deadline"}, float(committer.stats.expired)),
            ],
        )

    # ------------------------------------------------------------ storage

    def watch_store(self, store: LedgerStore) -> None:
        """Count every event the store commits (by type and carrier)."""
        store.save_listeners.append(self.metrics.record_events)

    def watch_database(
        self,
        store: LedgerStore,
        *,
        relay_stream: str | None,
        projections: bool,
        orphan_age_seconds: float | None,
    ) -> None:
        """Export gauges read from the database, refreshed by :meth:`start`.

        Args:
            store: The ledger store.
            relay_stream: Stream whose relay lag to export; None skips it.
            projections: Export each read model's lag.
            orphan_age_seconds: Parked receipts older than this count as
                orphaned; None skips the orphan count.
        """
        if orphan_age_seconds is not None:
            age = orphan_age_seconds
            orphans = self._add_probe(
                Probe("orphaned_receipts", lambda: [({}, float(count_orphans(store, age)))])
            )
            self.metrics.observe_gauge(names.RECEIPTS_ORPHANED, orphans)
        if relay_stream is not None:
            stream = relay_stream
            lag = self._add_probe(Probe("relay_lag", lambda: relay_lags(store, stream)))
            self.metrics.observe_gauge(names.RELAY_LAG, lag)
        if projections:
            lag = self._add_probe(Probe("projection_lag", lambda: projection_lags(store)))
            self.metrics.observe_gauge(names.PROJECTION_LAG, lag)

    def watch_relay(self, relay: Relay) -> None:
        """Export whether ``relay`` publishes, and its publish counters."""
        # Imported here because the relay imports this package for its spans.
        from ledger.relay.relay import RelayState

        stream = relay.config.stream

        def observe_publishing(options: CallbackOptions) -> list[Observation]:
            publishing = relay.snapshot().state is RelayState.PUBLISHING
            return [Observation(1 if publishing else 0, {"stream": stream})]

        self.metrics.meter.create_observable_gauge(
            names.RELAY_PUBLISHING.name,
            callbacks=[observe_publishing],
            unit=names.RELAY_PUBLISHING.unit,
            description=names.RELAY_PUBLISHING.description,
        )
        labels = {"stream": stream}
        for spec, attribute in (
            (names.RELAY_ACKNOWLEDGED, "acknowledged"),
            (names.RELAY_DUPLICATES, "duplicates"),
            (names.RELAY_REPUBLISHED, "republished"),
        ):
            self.metrics.observe_counter(spec, _counter_reader(relay, attribute, labels))

    def watch_projection_worker(self, worker: ProjectionWorker) -> None:
        """Export the projection worker's restarts and the age of what it last applied."""

        def observe_lag(options: CallbackOptions) -> list[Observation]:
            return [Observation(worker.last_lag_seconds)] if worker.active else []

        self.metrics.meter.create_observable_gauge(
            names.PROJECTION_LAG_TIME.name,
            callbacks=[observe_lag],
            unit=names.PROJECTION_LAG_TIME.unit,
            description=names.PROJECTION_LAG_TIME.description,
        )
        self.metrics.observe_counter(
            names.PROJECTION_RESTARTS, lambda: [({}, float(worker.restarts))]
        )

    def webhook_middleware(self, connections: Collection[str]) -> Middleware:
        """Return the aiohttp middleware that gives each callback a span and records its latency.

        Args:
            connections: The connections with a webhook route; requests naming
                others are labelled ``unknown``.
        """
        return webhook_middleware(
            self.tracer_provider.get_tracer("smsledger"),
            self.metrics.record_webhook,
            connections,
            spans=self.records_spans,
        )

    def watch_stuck(
        self, measure: Callable[[], Mapping[str, int]], connections: Collection[str] = ()
    ) -> None:
        """Export the number of stuck messages per connection, refreshed by :meth:`start`.

        Args:
            measure: Counts stuck messages per connection; queries the
                database, so it runs on the poller's worker thread.
            connections: Connections exported at 0 while none of their
                messages is stuck, so that alerts and dashboards find a series.
        """
        always = frozenset(connections)

        def read() -> list[tuple[dict[str, str], float]]:
            counts = measure()
            return [
                ({"connection": name}, float(counts.get(name, 0)))
                for name in sorted(always | counts.keys())
            ]

        stuck = self._add_probe(Probe("stuck_messages", read))
        self.metrics.observe_gauge(names.STUCK_MESSAGES, stuck)

    def watch_webhooks(self, metrics: WebhookMetrics) -> None:
        """Export the webhook endpoint's callback counts."""

        def read() -> list[tuple[dict[str, str], float]]:
            return [
                ({"connection": connection, "outcome": outcome}, float(count))
                for (connection, outcome), count in metrics.snapshot().items()
            ]

        self.metrics.observe_counter(names.WEBHOOK_CALLBACKS, read)

    def watch_server(
        self,
        settings: Settings,
        store: LedgerStore,
        committer: GroupCommitter,
        *,
        relay: Relay | None = None,
        projection_worker: ProjectionWorker | None = None,
        webhooks: WebhookMetrics | None = None,
        stuck: Callable[[], Mapping[str, int]] | None = None,
        connections: Collection[str] = (),
    ) -> None:
        """Export everything a ledger server runs: storage, group commit, relay,
        projections, the webhook endpoint and the stuck messages.

        Args:
            settings: The server's settings.
            store: The ledger store.
            committer: The group commit.
            relay: The embedded relay, if any.
            projection_worker: The embedded projection worker, if any.
            webhooks: The webhook endpoint's callback counts, if it runs.
            stuck: Counts stuck messages per connection (see :meth:`watch_stuck`).
            connections: The configured connection names.
        """
        self.watch_store(store)
        self.watch_committer(committer)
        self.watch_database(
            store,
            relay_stream=relay.config.stream if relay is not None else None,
            projections=projection_worker is not None,
            orphan_age_seconds=settings.metrics_orphan_age_seconds,
        )
        if relay is not None:
            self.watch_relay(relay)
        if projection_worker is not None:
            self.watch_projection_worker(projection_worker)
        if webhooks is not None:
            self.watch_webhooks(webhooks)
        if stuck is not None:
            self.watch_stuck(stuck, connections)

    def _add_probe(self, probe: Probe) -> GaugeValues:
        # Export the error counter at 0 from the start, so that rate() counts its first error.
        self.metrics.probe_errors.add(0, {"probe": probe.name})
        return self.poller.add(probe)

    def _count_probe_error(self, probe: str) -> None:
        self.metrics.probe_errors.add(1, {"probe": probe})


def _counter_reader(
    relay: Relay, attribute: str, labels: dict[str, str]
) -> Callable[[], list[tuple[dict[str, str], float]]]:
    """Return a reader of one of the relay's publish counters."""

    def read() -> list[tuple[dict[str, str], float]]:
        return [(labels, float(getattr(relay.snapshot().counters, attribute)))]

    return read
