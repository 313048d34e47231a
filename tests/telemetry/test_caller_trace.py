"""A caller's trace reaches events when this service records no spans of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from ledger.runtime import Runtime
from ledger.server.app import create_server
from ledger.telemetry import Telemetry, TelemetryOptions
from ledger.v1 import ledger_pb2_grpc
from tests.telemetry.test_tracing import submit_request

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def unexported(runtime: Runtime) -> AsyncIterator[tuple[str, Telemetry]]:
    """A server whose telemetry exports no spans, as without OTLP settings."""
    telemetry = Telemetry(TelemetryOptions(service_name="smsledger-test", environ={}))
    telemetry.activate()
    server = await create_server(runtime, "127.0.0.1:0", telemetry)
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}", telemetry
    finally:
        await server.stop(0)
        telemetry.shutdown()


async def test_caller_traceparent_kept_without_spans(
    runtime: Runtime, unexported: tuple[str, Telemetry]
) -> None:
    address, telemetry = unexported
    assert not telemetry.records_spans
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        await stub.SubmitMessage(submit_request("traced"), metadata=(("traceparent", CALLER),))
        await stub.SubmitMessage(submit_request("untraced"))
        await stub.SubmitMessage(
            submit_request("malformed"), metadata=(("traceparent", "00-zz-01"),)
        )

    traced, _ = runtime.ledger.get_message("acme", "traced")
    assert runtime.store.history(traced.id)[0].event.trace_context == CALLER
    for message_id in ("untraced", "malformed"):
        message, _ = runtime.ledger.get_message("acme", message_id)
        assert runtime.store.history(message.id)[0].event.trace_context is None
