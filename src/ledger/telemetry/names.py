"""Every metric the ledger's processes export, by OpenTelemetry instrument name.

The Prometheus exporter (``opentelemetry-exporter-prometheus``) turns dots into
underscores, appends ``_seconds`` for unit ``s`` and ``_total`` for counters, so
``ledger.rpc.duration`` becomes ``ledger_rpc_duration_seconds``. Alert rules and
dashboards use the Prometheus names; :data:`PROMETHEUS_NAMES` lists them so
that the chart check can reject an alert on a metric the ledger does not export.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = ["METRICS", "PROMETHEUS_NAMES", "MetricSpec"]

Kind = Literal["counter", "histogram", "gauge"]


class MetricSpec(NamedTuple):
    """One exported metric.

    Attributes:
        name: OpenTelemetry instrument name.
        kind: Metric type on ``/metrics``.
        unit: UCUM unit; ``s`` adds the ``_seconds`` suffix, braces are annotations.
        labels: Attribute names recorded with it.
        description: What it measures.
    """

    name: str
    kind: Kind
    unit: str
    labels: tuple[str, ...]
    description: str

    @property
    def prometheus_name(self) -> str:
        """Series name on ``/metrics``; histograms add ``_bucket``, ``_sum`` and ``_count``."""
        name = self.name.replace(".", "_")
        if self.unit == "s" and not name.endswith("_seconds"):
            name += "_seconds"
        if self.kind == "counter":
            name += "_total"
        return name


RPC_DURATION = MetricSpec(
    "ledger.rpc.duration",
    "histogram",
    "s",
    ("service", "method", "code"),
    "Time from a call's arrival to its status, by gRPC method and status code.",
)
EVENTS_APPENDED = MetricSpec(
    "ledger.events.appended",
    "counter",
    "{event}",
    ("event", "carrier"),
    "Events committed to the log by this process, by event type and carrier connection.",
)
BATCH_SIZE = MetricSpec(
    "ledger.commit.batch.size",
    "histogram",
    "{command}",
    (),
    "Commands per group-commit transaction.",
)
BATCH_DURATION = MetricSpec(
    "ledger.commit.batch.duration",
    "histogram",
    "s",
    (),
    "Time to apply and commit one group-commit batch.",
)
COMMIT_QUEUED = MetricSpec(
    "ledger.commit.queued",
    "gauge",
    "{command}",
    (),
    "Commands waiting for a group-commit transaction.",
)
COMMIT_REJECTED = MetricSpec(
    "ledger.commit.rejected",
    "counter",
    "{command}",
    ("reason",),
    "Commands refused before storage: queue_full (RESOURCE_EXHAUSTED) or deadline.",
)
DUPLICATES = MetricSpec(
    "ledger.duplicates.suppressed",
    "counter",
    "{command}",
    ("kind",),
    "Commands that repeated something already recorded and appended nothing, by kind.",
)
RECEIPTS_PARKED = MetricSpec(
    "ledger.receipts.parked",
    "counter",
    "{receipt}",
    ("connection",),
    "Receipts kept aside because no message has their carrier id yet.",
)
RECEIPTS_UNPARSED = MetricSpec(
    "ledger.receipts.unparsed",
    "counter",
    "{receipt}",
    ("connection",),
    "Raw receipts that could not be parsed and were kept for reprocessing.",
)
RECEIPTS_UNRECOGNIZED = MetricSpec(
    "ledger.receipts.unrecognized",
    "counter",
    "{receipt}",
    ("connection",),
    "Receipts recorded or parked with status unknown because their status word (or code) "
    "is not in the format's table or the connection's synonyms.",
)
RECEIPTS_ORPHANED = MetricSpec(
    "ledger.receipts.orphaned",
    "gauge",
    "{receipt}",
    (),
    "Parked receipts older than the late-receipt window, read from the database.",
)
RECEIPTS_FINAL = MetricSpec(
    "ledger.receipts.final",
    "counter",
    "{receipt}",
    ("carrier", "status"),
    "Final receipts (carrier-reported or inferred expiry) committed, by carrier and status.",
)
DELIVERY_RATIO = MetricSpec(
    "ledger.delivery.ratio",
    "gauge",
    "1",
    ("carrier",),
    "Delivered share of the final receipts this process committed within the sliding window.",
)
DELIVERY_WINDOW_RECEIPTS = MetricSpec(
    "ledger.delivery.window.receipts",
    "gauge",
    "{receipt}",
    ("carrier",),
    "Final receipts behind ledger_delivery_ratio, for a minimum-sample condition.",
)
RELAY_LAG = MetricSpec(
    "ledger.relay.lag.events",
    "gauge",
    "{event}",
    ("stream",),
    "Log entries not yet acknowledged by JetStream.",
)
RELAY_PUBLISHING = MetricSpec(
    "ledger.relay.publishing",
    "gauge",
    "1",
    ("stream",),
    "1 while this relay process holds the turn and publishes, else 0.",
)
RELAY_ACKNOWLEDGED = MetricSpec(
    "ledger.relay.acknowledged",
    "counter",
    "{event}",
    ("stream",),
    "Publishes JetStream acknowledged, including duplicates.",
)
RELAY_DUPLICATES = MetricSpec(
    "ledger.relay.duplicates",
    "counter",
    "{event}",
    ("stream",),
    "Publishes JetStream acknowledged as duplicates of a stored message.",
)
RELAY_REPUBLISHED = MetricSpec(
    "ledger.relay.republished",
    "counter",
    "{event}",
    ("stream",),
    "Events published again after the stream check found them missing.",
)
PROJECTION_LAG = MetricSpec(
    "ledger.projection.lag.events",
    "gauge",
    "{event}",
    ("projection",),
    "Log entries a read model has not applied yet.",
)
PROJECTION_LAG_TIME = MetricSpec(
    "ledger.projection.lag",
    "gauge",
    "s",
    (),
    "Age of the newest event the projection worker applied, when it applied it.",
)
PROJECTION_RESTARTS = MetricSpec(
    "ledger.projection.restarts",
    "counter",
    "{restart}",
    (),
    "Restarts of the projection worker after a failure.",
)
WEBHOOK_CALLBACKS = MetricSpec(
    "ledger.webhook.callbacks",
    "counter",
    "{callback}",
    ("connection", "outcome"),
    "Carrier callbacks on the webhook endpoint, by connection and outcome.",
)
WEBHOOK_DURATION = MetricSpec(
    "ledger.webhook.duration",
    "histogram",
    "s",
    ("connection", "code"),
    "Time from a callback's arrival to its response, by connection and HTTP status code.",
)
STUCK_MESSAGES = MetricSpec(
    "ledger.stuck.messages",
    "gauge",
    "{message}",
    ("connection",),
    "Messages accepted longer ago than the connection's stuck threshold and still without "
    "a final outcome, read from the database.",
)
PROBE_ERRORS = MetricSpec(
    "ledger.metrics.probe.errors",
    "counter",
    "{error}",
    ("probe",),
    "Failed database reads behind the gauges read from the database.",
)

METRICS: tuple[MetricSpec, ...] = (
    RPC_DURATION,
    EVENTS_APPENDED,
    BATCH_SIZE,
    BATCH_DURATION,
    COMMIT_QUEUED,
    COMMIT_REJECTED,
    DUPLICATES,
    RECEIPTS_PARKED,
    RECEIPTS_UNPARSED,
    RECEIPTS_UNRECOGNIZED,
    RECEIPTS_ORPHANED,
    RECEIPTS_FINAL,
    DELIVERY_RATIO,
    DELIVERY_WINDOW_RECEIPTS,
    RELAY_LAG,
    RELAY_PUBLISHING,
    RELAY_ACKNOWLEDGED,
    RELAY_DUPLICATES,
    RELAY_REPUBLISHED,
    PROJECTION_LAG,
    PROJECTION_LAG_TIME,
    PROJECTION_RESTARTS,
    WEBHOOK_CALLBACKS,
    WEBHOOK_DURATION,
    STUCK_MESSAGES,
    PROBE_ERRORS,
)

PROMETHEUS_NAMES: frozenset[str] = frozenset(m.prometheus_name for m in METRICS)
"""Base names on ``/metrics``; histogram series add ``_bucket``, ``_sum`` and ``_count``."""
