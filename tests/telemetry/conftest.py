"""A ledger server with telemetry: spans kept in memory, /metrics on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ledger.runtime import Runtime
from ledger.server.app import LedgerServer, create_server
from ledger.telemetry import Telemetry, TelemetryOptions
from ledger.v1 import ledger_pb2_grpc


@dataclass
class Observed:
    """A running server, a client stub, its spans and its metrics endpoint."""

    server: LedgerServer
    runtime: Runtime
    telemetry: Telemetry
    spans: InMemorySpanExporter
    stub: ledger_pb2_grpc.LedgerServiceStub
    metrics_url: str


@pytest.fixture
async def observed(runtime: Runtime) -> AsyncIterator[Observed]:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(
        TelemetryOptions(
            service_name="smsledger-test",
            poll_interval_seconds=0.2,
            span_processors=[SimpleSpanProcessor(exporter)],
            environ={},
        )
    )
    telemetry.activate()
    port = telemetry.start_metrics_server("127.0.0.1:0")
    server = await create_server(runtime, "127.0.0.1:0", telemetry)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield Observed(
                server,
                runtime,
                telemetry,
                exporter,
                ledger_pb2_grpc.LedgerServiceStub(channel),
                f"http://127.0.0.1:{port}/metrics",
            )
    finally:
        await server.stop(0)
        telemetry.shutdown()
