"""Telemetry of the webhook endpoint: spans, latency, callback counts and stuck messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ledger.application.commands import RecordAcceptance, SubmitMessage
from ledger.runtime import Runtime, build_runtime
from ledger.server.app import LedgerServer, create_server
from ledger.telemetry import Telemetry, TelemetryOptions, span_context_of
from ledger.telemetry.webhooks import webhook_middleware
from tests.conftest import make_settings
from tests.telemetry.test_metrics import Samples, scrape, value
from tests.telemetry.test_tracing import linked_to
from tests.webhooks.calls import Call, make
from tests.webhooks.conftest import PUBLIC, TENANT, prepare, write_connections

HOOK_SPAN = "POST /hooks/{connection}"
TOKEN_SPAN = "GET /hooks/{connection}/{token}"


@dataclass
class Hooked:
    """A server with telemetry and the webhook endpoint, its spans and its metrics."""

    server: LedgerServer
    runtime: Runtime
    spans: InMemorySpanExporter
    hooks_url: str
    metrics_url: str

    async def call(self, call: Call, headers: dict[str, str] | None = None) -> int:
        """Send ``call`` to the endpoint and return the response status."""
        url = f"{self.hooks_url}{call.path}"
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                call.method,
                url,
                data=call.body or None,
                headers={**call.headers, **(headers or {})},
            ) as response,
        ):
            return response.status

    def spans_named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    async def scrape_until(self, name: str, seconds: float = 10.0) -> Samples:
        """Scrape until series ``name`` appears (gauges read from the database lag a poll)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            samples = await asyncio.to_thread(scrape, self.metrics_url)
            if any(n == name for n, _ in samples) or asyncio.get_running_loop().time() > deadline:
                return samples
            await asyncio.sleep(0.1)


@pytest.fixture
def hook_runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    built = build_runtime(
        make_settings(
            database_url,
            tmp_path,
            connections_file=write_connections(tmp_path),
            webhook_public_base_url=PUBLIC,
        )
    )
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
async def hooked(hook_runtime: Runtime) -> AsyncIterator[Hooked]:
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
    server = await create_server(
        hook_runtime, "127.0.0.1:0", telemetry, webhook_address="127.0.0.1:0"
    )
    assert server.webhooks is not None
    await server.start()
    try:
        yield Hooked(
            server,
            hook_runtime,
            exporter,
            f"http://127.0.0.1:{server.webhooks.port}",
            f"http://127.0.0.1:{port}/metrics",
        )
    finally:
        await server.stop(0)
        telemetry.shutdown()


async def test_webhook_span_links_batch_and_event(hooked: Hooked) -> None:
    prepare(hooked.runtime, "m-traced", "twilio-a", "SM-TRACED-1")

    assert await hooked.call(make("twilio", "SM-TRACED-1")) == 200

    spans = hooked.spans_named(HOOK_SPAN)
    assert len(spans) == 1
    span = spans[0]
    assert span.kind is SpanKind.SERVER
    assert span.parent is None
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "POST"
    assert span.attributes["http.route"] == "/hooks/{connection}"
    assert span.attributes["ledger.connection"] == "twilio-a"
    assert span.attributes["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET
    span_context = span.get_span_context()
    assert span_context is not None

    batches = linked_to(hooked.spans_named("ledger.commit.batch"), span_context)
    assert len(batches) == 1

    message, _ = hooked.runtime.ledger.get_message(TENANT, "m-traced")
    history = hooked.runtime.store.history(message.id)
    stored = span_context_of(history[-1].event.trace_context)
    assert type(history[-1].event).__name__ == "Delivered"
    assert stored is not None
    assert (stored.trace_id, stored.span_id) == (span_context.trace_id, span_context.span_id)


async def test_webhook_span_hides_token(hooked: Hooked) -> None:
    prepare(hooked.runtime, "m-kannel", "kannel-a", "KANNEL-1")

    assert await hooked.call(make("kannel", "KANNEL-1")) == 200

    span = hooked.spans_named(TOKEN_SPAN)[0]
    assert span.attributes is not None
    assert span.attributes["ledger.connection"] == "kannel-a"
    assert all("kannel-token" not in str(v) for v in span.attributes.values())


async def test_webhook_span_links_caller_context(hooked: Hooked) -> None:
    prepare(hooked.runtime, "m-caller", "twilio-a", "SM-CALLER-1")
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    assert await hooked.call(make("twilio", "SM-CALLER-1"), {"traceparent": caller}) == 200

    span = hooked.spans_named(HOOK_SPAN)[0]
    assert span.parent is None
    assert [format(link.context.span_id, "016x") for link in span.links] == ["b7ad6b7169203331"]


async def test_middleware_status_per_response() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorded: list[tuple[str, int]] = []
    middleware = webhook_middleware(
        provider.get_tracer("test"), lambda c, s, _: recorded.append((c, s)), ["route-a"]
    )

    async def respond(request: web.Request) -> web.Response:
        status = int(request.query["status"])
        if status == 429:
            raise web.HTTPTooManyRequests()
        return web.Response(status=status)

    app = web.Application(middlewares=[middleware])
    app.router.add_post("/hooks/{connection}", respond)
    app.router.add_get("/healthz", respond)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            for path in ("/hooks/route-a?status=503", "/hooks/other?status=429"):
                async with session.post(f"http://127.0.0.1:{port}{path}") as response:
                    await response.read()
            async with session.get(f"http://127.0.0.1:{port}/healthz?status=200") as response:
                await response.read()
    finally:
        await runner.cleanup()

    assert recorded == [("route-a", 503), ("unknown", 429)]
    failed, limited = exporter.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert limited.status.status_code is StatusCode.UNSET
    assert limited.attributes is not None
    assert limited.attributes["http.response.status_code"] == 429
    assert limited.attributes["ledger.connection"] == "unknown"


async def test_webhook_metrics_exported(hooked: Hooked) -> None:
    prepare(hooked.runtime, "m-counted", "twilio-a", "SM-COUNTED-1")
    assert await hooked.call(make("twilio", "SM-COUNTED-1")) == 200
    assert await hooked.call(make("twilio", "SM-COUNTED-1", secret="wrong")) == 403
    assert await hooked.call(Call("POST", "/hooks/no-such-connection", b"x=1")) == 404

    samples = await hooked.scrape_until("ledger_stuck_messages")

    callbacks = "ledger_webhook_callbacks_total"
    assert value(samples, callbacks, connection="twilio-a", outcome="recorded") == 1
    assert value(samples, callbacks, connection="twilio-a", outcome="rejected_signature") == 1
    duration = "ledger_webhook_duration_seconds_count"
    assert value(samples, duration, connection="twilio-a", code="200") == 1
    assert value(samples, duration, connection="twilio-a", code="403") == 1
    assert value(samples, duration, connection="unknown", code="404") == 1
    assert value(samples, "ledger_webhook_duration_seconds_bucket", le="30.0") == 3
    assert not hooked.spans_named("GET /healthz")


async def test_stuck_gauge_exported(hooked: Hooked) -> None:
    # twilio-a counts a message as stuck 60 s after its acceptance, plivo-a after 3600 s.
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    for message_id, connection in (("m-stuck", "twilio-a"), ("m-waiting", "plivo-a")):
        hooked.runtime.ledger.execute(
            [
                SubmitMessage(
                    tenant=TENANT,
                    message_id=message_id,
                    destination="+447700900123",
                    sender="ACME",
                    carrier=connection,
                    submitted_at=long_ago,
                ),
                RecordAcceptance(
                    tenant=TENANT,
                    message_id=message_id,
                    segments=((1, f"ID-{message_id}"),),
                    accepted_at=long_ago,
                ),
            ]
        )

    deadline = asyncio.get_running_loop().time() + 10
    while True:
        samples = await hooked.scrape_until("ledger_stuck_messages")
        stuck = value(samples, "ledger_stuck_messages", connection="twilio-a")
        if stuck or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)

    assert stuck == 1
    assert ("ledger_stuck_messages", frozenset({("connection", "plivo-a")})) in samples
    assert value(samples, "ledger_stuck_messages", connection="plivo-a") == 0
    assert value(samples, "ledger_metrics_probe_errors_total", probe="stuck_messages") == 0
