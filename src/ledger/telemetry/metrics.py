"""The ledger's metric instruments and what feeds them.

Counters and histograms are recorded where things happen (RPC interceptor,
group-commit batches, committed events). Gauges are observed at collection
time from values that their owners keep current: ``GaugeValues`` holds the
last result of each database read, so that a scrape never waits on the
database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from ledger.application.commands import Command, RecordRawReceipt, RecordReceipt, SubmitMessage
from ledger.application.results import CommandResult, Disposition
from ledger.errors import LedgerError, ReceiptParseError
from ledger.receipts.classification import is_unrecognized_status
from ledger.telemetry import names
from ledger.telemetry.names import MetricSpec
from ledger.telemetry.window import SlidingRatio

__all__ = ["GaugeValues", "LedgerMetrics", "metric_views"]

SECONDS_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Latency buckets in seconds, from half a millisecond to the longest RPC deadlines."""

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Commands per batch, up to above the largest ``commit_max_batch`` worth running."""


def metric_views() -> list[View]:
    """Return the views that give each histogram buckets in its own unit.

    The SDK's default buckets (0, 5, 10, 25, ... 10000) suit milliseconds and
    would put every latency recorded in seconds into the first two buckets.
    """
    seconds = ExplicitBucketHistogramAggregation(SECONDS_BUCKETS)
    return [
        View(instrument_name=names.RPC_DURATION.name, aggregation=seconds),
        View(instrument_name=names.BATCH_DURATION.name, aggregation=seconds),
        View(instrument_name=names.WEBHOOK_DURATION.name, aggregation=seconds),
        View(
            instrument_name=names.BATCH_SIZE.name,
            aggregation=ExplicitBucketHistogramAggregation(BATCH_SIZE_BUCKETS),
        ),
    ]


class GaugeValues:
    """Latest value per label set of one gauge; written by pollers, read at collection."""

    def __init__(self) -> None:
        self._values: dict[tuple[tuple[str, str], ...], float] = {}
        self._lock = threading.Lock()

    def set(self, value: float, **labels: str) -> None:
        """Store the latest value for ``labels``."""
        with self._lock:
            self._values[tuple(sorted(labels.items()))] = value

    def replace(self, values: Iterable[tuple[dict[str, str], float]]) -> None:
        """Replace every label set at once (label sets that disappeared are dropped)."""
        fresh = {tuple(sorted(labels.items())): value for labels, value in values}
        with self._lock:
            self._values = fresh

    def observe(self, options: CallbackOptions) -> list[Observation]:
        """Return the stored values as observations (an observable instrument callback)."""
        with self._lock:
            items = list(self._values.items())
        return [Observation(value, dict(labels)) for labels, value in items]


def _create_counter(meter: Meter, spec: MetricSpec) -> Any:
    return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)


def _create_histogram(meter: Meter, spec: MetricSpec) -> Any:
    return meter.create_histogram(spec.name, unit=spec.unit, description=spec.description)


def _receipt_connection(command: Command) -> str:
    if isinstance(command, RecordRawReceipt):
        return command.connection
    if isinstance(command, RecordReceipt):
        return command.connection or ""
    return ""


def _duplicate_kind(command: Command) -> str:
    if isinstance(command, SubmitMessage):
        return "submit"
    if isinstance(command, RecordReceipt | RecordRawReceipt):
        return "receipt"
    return "acceptance"


class LedgerMetrics:
    """The instruments of one process, on one meter.

    Args:
        meter: Meter of the process's meter provider.
        delivery_window_seconds: Sliding window of the delivery ratio gauge.
    """

    def __init__(self, meter: Meter, delivery_window_seconds: float = 900.0) -> None:
        self.meter = meter
        self.rpc_duration = _create_histogram(meter, names.RPC_DURATION)
        self.events_appended = _create_counter(meter, names.EVENTS_APPENDED)
        self.batch_size = _create_histogram(meter, names.BATCH_SIZE)
        self.batch_duration = _create_histogram(meter, names.BATCH_DURATION)
        self.duplicates = _create_counter(meter, names.DUPLICATES)
        self.receipts_parked = _create_counter(meter, names.RECEIPTS_PARKED)
        self.receipts_unparsed = _create_counter(meter, names.RECEIPTS_UNPARSED)
        self.receipts_unrecognized = _create_counter(meter, names.RECEIPTS_UNRECOGNIZED)
        self.receipts_final = _create_counter(meter, names.RECEIPTS_FINAL)
        self.probe_errors = _create_counter(meter, names.PROBE_ERRORS)
        self.webhook_duration = _create_histogram(meter, names.WEBHOOK_DURATION)
        self.delivery = SlidingRatio(delivery_window_seconds)
        meter.create_observable_gauge(
            names.DELIVERY_RATIO.name,
            callbacks=[self._observe_delivery_ratio],
            unit=names.DELIVERY_RATIO.unit,
            description=names.DELIVERY_RATIO.description,
        )
        meter.create_observable_gauge(
            names.DELIVERY_WINDOW_RECEIPTS.name,
            callbacks=[self._observe_delivery_counts],
            unit=names.DELIVERY_WINDOW_RECEIPTS.unit,
            description=names.DELIVERY_WINDOW_RECEIPTS.description,
        )

    # --------------------------------------------------------------- record

    def record_rpc(self, full_method: str, code: str, seconds: float) -> None:
        """Record one finished RPC; ``full_method`` is ``/package.Service/Method``."""
        service, _, method = full_method.lstrip("/").partition("/")
        self.rpc_duration.record(seconds, {"service": service, "method": method, "code": code})

    def record_webhook(self, connection: str, status: int, seconds: float) -> None:
        """Record one finished webhook request with its HTTP status code."""
        self.webhook_duration.record(seconds, {"connection": connection, "code": str(status)})

    def record_batch(self, size: int, seconds: float) -> None:
        """Record one committed group-commit batch (the committer's ``on_batch``)."""
        self.batch_size.record(size)
        self.batch_duration.record(seconds)

    def record_events(self, events: Sequence[Any]) -> None:
        """Count events committed to the log (the store's save listener)."""
        for event in events:
            event_type = type(event).__name__
            carrier = getattr(event, "carrier", None) or getattr(event, "connection", None) or ""
            self.events_appended.add(1, {"event": event_type, "carrier": carrier})
            if getattr(event, "final", False) and hasattr(event, "connection"):
                self.receipts_final.add(1, {"carrier": carrier, "status": event_type.lower()})
                self.delivery.add(carrier, event_type == "Delivered")

    def record_outcomes(self, commands: Sequence[Command], outcomes: Sequence[object]) -> None:
        """Count duplicates and parked, unparsed and unrecognized receipts among outcomes."""
        for command, outcome in zip(commands, outcomes, strict=False):
            if isinstance(outcome, ReceiptParseError):
                self.receipts_unparsed.add(1, {"connection": _receipt_connection(command)})
                continue
            if not isinstance(outcome, CommandResult):
                continue
            if outcome.replayed:
                self.duplicates.add(1, {"kind": "request_id"})
                continue
            parts: Sequence[CommandResult | LedgerError] = outcome.receipts or (outcome,)
            for part in parts:
                if not isinstance(part, CommandResult):
                    continue
                if not part.duplicate and any(map(is_unrecognized_status, part.warnings)):
                    self.receipts_unrecognized.add(1, {"connection": _receipt_connection(command)})
                if part.disposition is Disposition.PARKED:
                    self.receipts_parked.add(1, {"connection": _receipt_connection(command)})
                elif part.duplicate:
                    self.duplicates.add(1, {"kind": _duplicate_kind(command)})

    # -------------------------------------------------------------- observe

    def observe_gauge(self, spec: MetricSpec, values: GaugeValues) -> None:
        """Export ``values`` as the gauge ``spec``."""
        self.meter.create_observable_gauge(
            spec.name, callbacks=[values.observe], unit=spec.unit, description=spec.description
        )

    def observe_counter(
        self, spec: MetricSpec, read: Callable[[], Iterable[tuple[dict[str, str], float]]]
    ) -> None:
        """Export running totals that ``read`` returns as the counter ``spec``."""

        def callback(options: CallbackOptions) -> list[Observation]:
            return [Observation(value, labels) for labels, value in read()]

        self.meter.create_observable_counter(
            spec.name, callbacks=[callback], unit=spec.unit, description=spec.description
        )

    def _observe_delivery_ratio(self, options: CallbackOptions) -> list[Observation]:
        return [
            Observation(ratio, {"carrier": carrier})
            for carrier, (ratio, _) in self.delivery.ratios().items()
        ]

    def _observe_delivery_counts(self, options: CallbackOptions) -> list[Observation]:
        return [
            Observation(total, {"carrier": carrier})
            for carrier, (_, total) in self.delivery.ratios().items()
        ]
