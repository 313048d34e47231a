"""Receipts with an unrecognized status are counted per connection, once per report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ledger.application.commands import Command, RecordRawReceipt
from ledger.application.results import CommandResult
from ledger.runtime import Runtime, build_runtime
from ledger.telemetry.metrics import LedgerMetrics
from tests.application.test_ledger import accept, submit
from tests.conftest import make_settings

COUNTER = "ledger.receipts.unrecognized"


@pytest.fixture
def sqlite_runtime(tmp_path: Path) -> Iterator[Runtime]:
    built = build_runtime(make_settings(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path))
    try:
        yield built
    finally:
        built.close()


def smpp(body: bytes, connection: str = "carrier-a") -> RecordRawReceipt:
    return RecordRawReceipt(tenant="acme", connection=connection, body=body, format="smpp-text")


def infobip(*reports: tuple[str, str]) -> RecordRawReceipt:
    results = [
        {"messageId": carrier_id, "status": {"id": 99, "name": name}}
        for carrier_id, name in reports
    ]
    return RecordRawReceipt(
        tenant="acme",
        connection="carrier-a",
        body=json.dumps({"results": results}).encode(),
        content_type="application/json",
        format="infobip",
    )


def counted(runtime: Runtime, commands: list[Command]) -> dict[str, int]:
    reader = InMemoryMetricReader()
    metrics = LedgerMetrics(MeterProvider(metric_readers=[reader]).get_meter("test"))
    metrics.record_outcomes(commands, runtime.ledger.execute(commands))
    data = reader.get_metrics_data()
    totals: dict[str, int] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == COUNTER:
                    for point in metric.data.data_points:
                        connection = str(point.attributes["connection"])
                        totals[connection] = totals.get(connection, 0) + int(point.value)
    return totals


def test_only_unrecognized_words_count(sqlite_runtime: Runtime) -> None:
    sqlite_runtime.ledger.execute([submit(), accept("m1", "AB12")])
    commands: list[Command] = [
        smpp(b"id:AB12 stat:WIBBLE"),
        # A resend of the same report is a duplicate, not a second receipt.
        smpp(b"id:AB12 stat:WIBBLE"),
        # No message has this carrier id yet: parked, and still counted.
        smpp(b"id:FF99 stat:FROBNICATED", connection="carrier-b"),
        smpp(b"id:AB12 stat:UNKNOWN"),
        smpp(b"id:AB12 stat:ENROUTE"),
    ]
    assert counted(sqlite_runtime, commands) == {"carrier-a": 1, "carrier-b": 1}


def test_each_report_of_a_batched_payload_counts(sqlite_runtime: Runtime) -> None:
    sqlite_runtime.ledger.execute(
        [submit(), accept("m1", "ib-1"), submit("m2"), accept("m2", "ib-2")]
    )
    command = infobip(("ib-1", "NEW_STATE_ONE"), ("ib-2", "NEW_STATE_TWO"), ("ib-3", "PENDING_X"))
    assert counted(sqlite_runtime, [command]) == {"carrier-a": 2}


def test_result_carries_the_parser_warnings(sqlite_runtime: Runtime) -> None:
    outcomes = sqlite_runtime.ledger.execute([submit(), accept(), smpp(b"id:00AB12 stat:WIBBLE")])
    result = outcomes[2]
    assert isinstance(result, CommandResult), result
    assert result.warnings == ("unrecognized status word 'WIBBLE'",)
