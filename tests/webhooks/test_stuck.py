"""Stuck messages: listed over gRPC and counted for a gauge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from ledger.application.commands import RecordReceipt
from ledger.domain.outcomes import Status
from ledger.runtime import Runtime, build_runtime
from ledger.server.app import create_server
from ledger.v1 import events_pb2, ledger_pb2, ledger_pb2_grpc
from ledger.webhooks.stuck import StuckQuery, count_stuck, list_stuck
from ledger.webhooks.stuck_service import stuck_gauge
from tests.conftest import make_settings
from tests.webhooks.conftest import PUBLIC, TENANT, prepare, write_connections


def query(runtime: Runtime, after: timedelta, default: int = 10, **filters: str) -> StuckQuery:
    return StuckQuery(
        datetime.now(UTC) + after,
        default,
        runtime.connections,
        **filters,
    )


def deliver(runtime: Runtime, connection: str, carrier_id: str) -> None:
    runtime.ledger.execute(
        [
            RecordReceipt(
                tenant=TENANT,
                status=Status.DELIVERED,
                connection=connection,
                carrier_message_id=carrier_id,
                final=True,
            )
        ]
    )


def test_stuck_thresholds_per_connection(hook_runtime: Runtime) -> None:
    prepare(hook_runtime, "m-plivo", "plivo-a", "Plivo-UUID-1")
    prepare(hook_runtime, "m-twilio", "twilio-a", "SMabcDEF")
    prepare(hook_runtime, "m-done", "plivo-a", "Plivo-UUID-2")
    deliver(hook_runtime, "plivo-a", "Plivo-UUID-2")

    early, _ = list_stuck(hook_runtime.store, query(hook_runtime, timedelta(seconds=30)))
    assert [(m.message_id, m.threshold_seconds) for m in early] == [("m-plivo", 10)]
    assert early[0].carrier_message_ids == ((1, "Plivo-UUID-1"),)
    assert early[0].status == "ACCEPTED"
    assert early[0].connection == "plivo-a"

    late, token = list_stuck(hook_runtime.store, query(hook_runtime, timedelta(seconds=120)))
    assert sorted(m.message_id for m in late) == ["m-plivo", "m-twilio"]
    assert token == ""
    twilio = next(m for m in late if m.message_id == "m-twilio")
    assert twilio.carrier_message_ids == ((1, "SMabcDEF"),)
    assert twilio.threshold_seconds == 60

    counts = count_stuck(hook_runtime.store, query(hook_runtime, timedelta(seconds=120)))
    assert counts == {"plivo-a": 1, "twilio-a": 1}
    assert count_stuck(hook_runtime.store, query(hook_runtime, timedelta(seconds=0))) == {}


def test_stuck_filters_and_pages(hook_runtime: Runtime) -> None:
    for n in range(5):
        prepare(hook_runtime, f"m-{n}", "sinch-a", f"batch-{n}")
    prepare(hook_runtime, "m-other", "bird-a", "bird-1")
    later = timedelta(seconds=60)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page, token = list_stuck(
            hook_runtime.store, query(hook_runtime, later, connection="sinch-a"), 2, token
        )
        seen += [m.message_id for m in page]
        pages += 1
        if not token:
            break
    assert sorted(seen) == [f"m-{n}" for n in range(5)]
    assert pages == 3
    everything, _ = list_stuck(hook_runtime.store, query(hook_runtime, later, tenant=TENANT))
    assert len(everything) == 6
    nobody, _ = list_stuck(hook_runtime.store, query(hook_runtime, later, tenant="other"))
    assert nobody == []


def test_stuck_gauge(hook_runtime: Runtime) -> None:
    prepare(hook_runtime, "m-1", "plivo-a", "P-1")
    clock = lambda: datetime.now(UTC) + timedelta(seconds=30)  # noqa: E731
    measure = stuck_gauge(hook_runtime.store, hook_runtime.connections, 10, clock)
    assert measure() == {"plivo-a": 1}


async def test_list_stuck_messages_rpc(tmp_path: Path) -> None:
    runtime = build_runtime(
        make_settings(
            f"sqlite:///{tmp_path / 'ledger.db'}",
            tmp_path,
            connections_file=write_connections(tmp_path),
            webhook_public_base_url=PUBLIC,
            stuck_after_seconds=1,
        )
    )
    server = await create_server(runtime, "127.0.0.1:0", webhook_address="")
    await server.start()
    try:
        prepare(runtime, "m-rpc", "plivo-a", "Plivo-RPC-1")
        prepare(runtime, "m-slow", "twilio-a", "SM-RPC-2")
        await asyncio.sleep(1.2)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = ledger_pb2_grpc.ReconciliationServiceStub(channel)
            reply = await stub.ListStuckMessages(ledger_pb2.ListStuckMessagesRequest(tenant=TENANT))
            bad = stub.ListStuckMessages(ledger_pb2.ListStuckMessagesRequest(page_token="x"))
            try:
                await bad
                raise AssertionError("an invalid page token was accepted")
            except grpc.aio.AioRpcError as error:
                assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop(0)
        runtime.close()
    assert [m.message_id for m in reply.messages] == ["m-rpc"]
    stuck = reply.messages[0]
    assert stuck.connection == "plivo-a"
    assert stuck.threshold_seconds == 1
    assert stuck.status == events_pb2.MESSAGE_STATUS_ACCEPTED
    assert [(c.segment, c.carrier_message_id) for c in stuck.carrier_message_ids] == [
        (1, "Plivo-RPC-1")
    ]
    assert reply.next_page_token == ""
