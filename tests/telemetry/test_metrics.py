"""The /metrics endpoint scraped before and after a short burst of real traffic."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger.telemetry import METRICS, PROMETHEUS_NAMES
from ledger.v1 import ledger_pb2 as pb
from tests.telemetry.conftest import Observed
from tests.telemetry.test_tracing import submit_request

MESSAGES = 20
DELIVERED = 15

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset(
                (k, v) for k, v in sample.labels.items() if not k.startswith("otel_scope")
            )
            samples[(sample.name, labels)] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


def names_of(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


async def drive_traffic(observed: Observed) -> None:
    stub = observed.stub
    await asyncio.gather(*(stub.SubmitMessage(submit_request(f"m{i}")) for i in range(MESSAGES)))
    await asyncio.gather(
        *(
            stub.RecordAcceptance(
                pb.RecordAcceptanceRequest(
                    tenant="acme",
                    message_id=f"m{i}",
                    segments=[pb.SegmentAcceptance(segment=0, carrier_message_id=f"C{i}")],
                )
            )
            for i in range(MESSAGES)
        )
    )
    await asyncio.gather(
        *(
            stub.RecordReceipt(
                pb.RecordReceiptRequest(
                    tenant="acme",
                    carrier=pb.CarrierRef(connection="carrier-a", carrier_message_id=f"C{i}"),
                    status=pb.RECEIPT_STATUS_DELIVERED
                    if i < DELIVERED
                    else pb.RECEIPT_STATUS_FAILED,
                    final=True,
                )
            )
            for i in range(MESSAGES)
        )
    )
    # A repeated submission, a receipt no message has yet, an unparsable raw receipt.
    await stub.SubmitMessage(submit_request("m0"))
    await stub.RecordReceipt(
        pb.RecordReceiptRequest(
            tenant="acme",
            carrier=pb.CarrierRef(connection="carrier-a", carrier_message_id="UNKNOWN1"),
            status=pb.RECEIPT_STATUS_DELIVERED,
            final=True,
        )
    )
    # A raw receipt with a status word in no table, and one with the listed word UNKNOWN.
    unrecognized = await stub.RecordRawReceipt(
        pb.RecordRawReceiptRequest(
            tenant="acme", connection="carrier-a", format="smpp-text", body=b"id:C0 stat:WIBBLE"
        )
    )
    assert list(unrecognized.warnings) == ["unrecognized status word 'WIBBLE'"]
    known = await stub.RecordRawReceipt(
        pb.RecordRawReceiptRequest(
            tenant="acme", connection="carrier-a", format="smpp-text", body=b"id:C1 stat:UNKNOWN"
        )
    )
    assert list(known.warnings) == []
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.RecordRawReceipt(
            pb.RecordRawReceiptRequest(
                tenant="acme", connection="carrier-a", format="twilio", body=b"\xff\xfe not a form"
            )
        )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.SubmitMessage(submit_request(""))


async def scrape_until(observed: Observed, name: str, seconds: float = 10.0) -> Samples:
    """Scrape until series ``name`` appears (gauges read from the database lag a poll)."""
    deadline = time.monotonic() + seconds
    while True:
        samples = await asyncio.to_thread(scrape, observed.metrics_url)
        if name in names_of(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.1)


async def test_metrics_move_under_load(observed: Observed) -> None:
    before = await asyncio.to_thread(scrape, observed.metrics_url)
    assert value(before, "ledger_events_appended_total") == 0

    await drive_traffic(observed)
    after = await scrape_until(observed, "ledger_projection_lag_events")

    rpc = "ledger_rpc_duration_seconds_count"
    assert value(after, rpc, method="SubmitMessage", code="OK") == MESSAGES + 1
    assert value(after, rpc, method="SubmitMessage", code="INVALID_ARGUMENT") == 1
    assert value(after, rpc, method="RecordAcceptance", code="OK") == MESSAGES
    assert value(after, rpc, method="RecordRawReceipt", code="INVALID_ARGUMENT") == 1
    assert value(after, "ledger_rpc_duration_seconds_bucket", method="SubmitMessage", le="30.0") > 0

    events = "ledger_events_appended_total"
    assert value(after, events, event="Submitted", carrier="carrier-a") == MESSAGES
    assert value(after, events, event="CarrierAccepted", carrier="carrier-a") == MESSAGES
    assert value(after, events, event="Delivered", carrier="carrier-a") == DELIVERED
    assert value(after, events, event="Failed", carrier="carrier-a") == MESSAGES - DELIVERED

    final = "ledger_receipts_final_total"
    assert value(after, final, carrier="carrier-a", status="delivered") == DELIVERED
    assert value(after, final, carrier="carrier-a", status="failed") == MESSAGES - DELIVERED
    ratio = value(after, "ledger_delivery_ratio", carrier="carrier-a")
    assert ratio == pytest.approx(DELIVERED / MESSAGES)
    assert value(after, "ledger_delivery_window_receipts", carrier="carrier-a") == MESSAGES

    assert value(after, "ledger_duplicates_suppressed_total", kind="submit") == 1
    assert value(after, "ledger_receipts_parked_total", connection="carrier-a") == 1
    assert value(after, "ledger_receipts_unparsed_total", connection="carrier-a") == 1
    assert value(after, "ledger_receipts_unrecognized_total", connection="carrier-a") == 1

    committed = MESSAGES * 3 + 2
    assert value(after, "ledger_commit_batch_size_sum") >= committed
    assert 0 < value(after, "ledger_commit_batch_size_count") <= committed
    assert value(after, "ledger_commit_batch_duration_seconds_count") > 0
    assert value(after, "ledger_commit_queued") == 0
    assert value(after, "ledger_commit_rejected_total", reason="queue_full") == 0

    assert ("ledger_receipts_orphaned", frozenset()) in after
    assert value(after, "ledger_metrics_probe_errors_total") == 0


async def test_metrics_projection_lag_falls_to_zero(observed: Observed) -> None:
    await drive_traffic(observed)
    deadline = time.monotonic() + 20
    while True:
        samples = await scrape_until(observed, "ledger_projection_lag_events")
        lags = [v for (n, _), v in samples.items() if n == "ledger_projection_lag_events"]
        if lags and max(lags) == 0:
            break
        assert time.monotonic() < deadline, f"projection lag stayed at {lags}"
        await asyncio.sleep(0.2)
    assert "ledger_projection_lag_seconds" in names_of(samples)
    assert value(samples, "ledger_projection_restarts_total") == 0


async def test_metrics_server_exports_declared_names(observed: Observed) -> None:
    await drive_traffic(observed)
    samples = await scrape_until(observed, "ledger_projection_lag_events")
    exported = set()
    for name in names_of(samples):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in PROMETHEUS_NAMES:
                name = name[: -len(suffix)]
        exported.add(name)

    # No relay and no webhook connection run in this server, and without
    # connection profiles the stuck gauge has a series only for stuck messages.
    absent = {
        m.prometheus_name
        for m in METRICS
        if m.name.startswith(("ledger.relay.", "ledger.webhook.", "ledger.stuck."))
    }
    assert PROMETHEUS_NAMES - absent <= exported
    assert {n for n in exported if n.startswith("ledger_")} <= PROMETHEUS_NAMES
