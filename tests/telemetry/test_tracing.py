"""One command followed from its RPC span through the batch span to the relay and
projection spans, on SQLite and PostgreSQL, with a real NATS server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from ledger.application.commands import SubmitMessage
from ledger.application.committer import GroupCommitter
from ledger.relay import Relay
from ledger.telemetry import span_context_of
from ledger.v1 import ledger_pb2
from tests.relay.helpers import delete_stream, make_config, read_stream, running, wait_acked
from tests.telemetry.conftest import Observed

SUBMIT_SPAN = "/ledger.v1.LedgerService/SubmitMessage"


def submit_request(message_id: str) -> ledger_pb2.SubmitMessageRequest:
    return ledger_pb2.SubmitMessageRequest(
        tenant="acme",
        message_id=message_id,
        destination="+447700900123",
        sender="ACME",
        carrier="carrier-a",
        validity_period=Duration(seconds=3600),
    )


def spans_named(observed: Observed, name: str) -> list[ReadableSpan]:
    return [s for s in observed.spans.get_finished_spans() if s.name == name]


def linked_to(spans: Sequence[ReadableSpan], target: SpanContext) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if any(
            link.context.trace_id == target.trace_id and link.context.span_id == target.span_id
            for link in s.links
        )
    ]


async def wait_for_linked(
    observed: Observed, name: str, target: SpanContext, seconds: float = 20.0
) -> list[ReadableSpan]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = linked_to(spans_named(observed, name), target)
        if found:
            return found
        await asyncio.sleep(0.05)
    names = sorted({s.name for s in observed.spans.get_finished_spans()})
    raise AssertionError(f"no {name!r} span links to the RPC span; spans seen: {names}")


@pytest.mark.nats
async def test_command_trace_reaches_relay_and_projections(
    observed: Observed, nats_url: str
) -> None:
    await observed.stub.SubmitMessage(submit_request("traced-1"))

    rpc_spans = spans_named(observed, SUBMIT_SPAN)
    assert len(rpc_spans) == 1
    rpc = rpc_spans[0]
    assert rpc.kind is SpanKind.SERVER
    rpc_context = rpc.get_span_context()
    assert rpc_context is not None

    # The batch span is a root span of its own, linked to the RPC span.
    batches = linked_to(spans_named(observed, "ledger.commit.batch"), rpc_context)
    assert len(batches) == 1
    assert batches[0].parent is None
    assert batches[0].context.trace_id != rpc_context.trace_id
    assert batches[0].attributes is not None
    assert batches[0].attributes["ledger.batch.commands"] == 1

    # The stored event carries the RPC span's context.
    message, _ = observed.runtime.ledger.get_message("acme", "traced-1")
    history = observed.runtime.store.history(message.id)
    stored = span_context_of(history[0].event.trace_context)
    assert stored is not None
    assert (stored.trace_id, stored.span_id) == (rpc_context.trace_id, rpc_context.span_id)

    # The server runs the projections: their batch span links to the RPC span.
    projected = await wait_for_linked(observed, "projections batch", rpc_context)
    assert projected[0].parent is None

    # The relay's publish span links to it, and the NATS message carries it.
    config = make_config(nats_url)
    relay = Relay(observed.runtime.store, config)
    try:
        async with running(relay) as task:
            await wait_acked(relay, observed.runtime.store.max_position(), task, 30)
        published = await wait_for_linked(observed, "relay publish", rpc_context)
        assert published[0].parent is None
        streamed = await read_stream(nats_url, config.stream, config.stream_subjects)
        header = span_context_of(streamed[0].headers.get("traceparent"))
        assert header is not None
        assert header.trace_id == rpc_context.trace_id
    finally:
        await delete_stream(nats_url, config.stream)


async def test_rpc_span_records_abort_code(observed: Observed) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await observed.stub.SubmitMessage(submit_request(""))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    span = spans_named(observed, SUBMIT_SPAN)[0]
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_committer_keeps_given_trace_context(observed: Observed) -> None:
    committer: GroupCommitter = observed.server.committer
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    command = SubmitMessage(
        tenant="acme",
        message_id="given-context",
        destination="+447700900123",
        sender="ACME",
        carrier="carrier-a",
        trace_context=given,
    )

    await committer.execute([command])

    message, _ = observed.runtime.ledger.get_message("acme", "given-context")
    history = observed.runtime.store.history(message.id)
    assert history[0].event.trace_context == given


async def test_health_check_has_no_span(observed: Observed) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{observed.server.port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert response.status == health_pb2.HealthCheckResponse.SERVING

    assert not [s for s in observed.spans.get_finished_spans() if "Health" in s.name]
