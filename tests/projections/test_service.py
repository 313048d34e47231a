"""``ReadModelService`` over a real channel, with the projections running in the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.runtime import Runtime, build_runtime
from ledger.server.app import create_server
from ledger.v1 import events_pb2, readmodels_pb2, readmodels_pb2_grpc
from tests.conftest import make_settings
from tests.projections.traffic import BASE, TENANT, plans, run_rounds

if TYPE_CHECKING:
    # The asynchronous stub type exists only in the generated type stubs.
    Stub = readmodels_pb2_grpc.ReadModelServiceAsyncStub


def ts(seconds: float) -> Timestamp:
    value = Timestamp()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


@pytest.fixture
async def stub(server: tuple[str, Runtime]) -> AsyncIterator[tuple[Stub, Runtime]]:
    address, runtime = server
    await asyncio.to_thread(run_rounds, runtime.ledger, plans(90, seed=4))
    end = await asyncio.to_thread(runtime.store.max_position)
    async with grpc.aio.insecure_channel(address) as channel:
        client = readmodels_pb2_grpc.ReadModelServiceStub(channel)
        deadline = time.monotonic() + 30
        while True:
            reply = await client.ListMessages(
                readmodels_pb2.ListMessagesRequest(tenant=TENANT, page_size=1)
            )
            if reply.position >= end:
                break
            assert time.monotonic() < deadline, f"read models at {reply.position}, log at {end}"
            await asyncio.sleep(0.05)
        yield client, runtime


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
    return found


async def all_pages(client: Stub, request: readmodels_pb2.ListMessagesRequest) -> list[str]:
    found: list[str] = []
    while True:
        reply = await client.ListMessages(request)
        found.extend(m.message_id for m in reply.messages)
        if not reply.next_page_token:
            return found
        request.page_token = reply.next_page_token


async def test_list_messages_pages_in_stable_order(stub: tuple[Stub, Runtime]) -> None:
    client, _ = stub
    paged = await all_pages(client, readmodels_pb2.ListMessagesRequest(tenant=TENANT, page_size=7))
    whole = await client.ListMessages(readmodels_pb2.ListMessagesRequest(tenant=TENANT))
    assert len(paged) == 90
    assert paged == [m.message_id for m in whole.messages]
    assert paged == sorted(paged), "messages are submitted in id order"


async def test_list_messages_filters(stub: tuple[Stub, Runtime]) -> None:
    client, _ = stub
    delivered = await client.ListMessages(
        readmodels_pb2.ListMessagesRequest(
            tenant=TENANT, statuses=[events_pb2.MESSAGE_STATUS_DELIVERED]
        )
    )
    assert delivered.messages
    assert all(m.status == events_pb2.MESSAGE_STATUS_DELIVERED for m in delivered.messages)

    by_carrier = await client.ListMessages(
        readmodels_pb2.ListMessagesRequest(tenant=TENANT, carrier="beta", country="de")
    )
    assert by_carrier.messages
    assert all(m.carrier == "beta" and m.country == "DE" for m in by_carrier.messages)

    start = BASE.timestamp() + 70
    ranged = await client.ListMessages(
        readmodels_pb2.ListMessagesRequest(
            tenant=TENANT, submitted_from=ts(start), submitted_to=ts(start + 70)
        )
    )
    assert [m.message_id for m in ranged.messages] == [f"m{n:06d}" for n in range(10, 20)]

    retried = next(m for m in ranged.messages if m.attempt_count == 2)
    assert len(retried.carriers) == 2
    assert retried.carrier == retried.carriers[1]


async def test_list_messages_rejects_invalid_input(stub: tuple[Stub, Runtime]) -> None:
    client, _ = stub
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.ListMessages(readmodels_pb2.ListMessagesRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tenant" in violations(caught.value)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.ListMessages(
            readmodels_pb2.ListMessagesRequest(tenant=TENANT, page_token="not-a-token")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in violations(caught.value)

    first = await client.ListMessages(
        readmodels_pb2.ListMessagesRequest(tenant=TENANT, page_size=2)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.ListMessages(
            readmodels_pb2.ListMessagesRequest(
                tenant=TENANT, carrier="alpha", page_token=first.next_page_token
            )
        )
    assert "other filters" in violations(caught.value)["page_token"]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.ListMessages(
            readmodels_pb2.ListMessagesRequest(
                tenant=TENANT, submitted_from=ts(100), submitted_to=ts(50)
            )
        )
    assert "submitted_to" in violations(caught.value)


async def test_carrier_performance_groups(stub: tuple[Stub, Runtime]) -> None:
    client, _ = stub
    start = ts(BASE.timestamp())
    end = ts((BASE + timedelta(days=1)).timestamp())
    total = await client.GetCarrierPerformance(
        readmodels_pb2.StatisticsRequest(tenant=TENANT, start_time=start, end_time=end)
    )
    assert len(total.groups) == 1
    assert total.groups[0].submitted == 90

    by = await client.GetCarrierPerformance(
        readmodels_pb2.StatisticsRequest(
            tenant=TENANT,
            start_time=start,
            end_time=end,
            group_by=[readmodels_pb2.GROUPING_CARRIER, readmodels_pb2.GROUPING_HOUR],
        )
    )
    assert {g.key.carrier for g in by.groups} == {"alpha", "beta", "gamma"}
    assert all(g.key.period_start.seconds % 3600 == 0 for g in by.groups)
    assert sum(g.submitted for g in by.groups) == 90
    assert sum(g.delivered for g in by.groups) == total.groups[0].delivered

    for group in by.groups:
        finals = (
            group.delivered
            + group.failed_permanent
            + group.failed_transient
            + group.rejected
            + group.expired
            + group.unknown
            + group.accepted_final
        )
        assert group.pending == group.submitted - finals
        if finals:
            assert group.delivery_rate == pytest.approx(group.delivered / finals)
        assert (
            sum(
                c.count
                for c in group.failure_causes
                if c.status == events_pb2.MESSAGE_STATUS_FAILED and c.permanent
            )
            == group.failed_permanent
        )


async def test_latency_groups(stub: tuple[Stub, Runtime]) -> None:
    client, _ = stub
    reply = await client.GetLatency(
        readmodels_pb2.StatisticsRequest(
            tenant=TENANT,
            start_time=ts(BASE.timestamp()),
            end_time=ts((BASE + timedelta(days=1)).timestamp()),
            carriers=["alpha", "beta"],
            group_by=[readmodels_pb2.GROUPING_CARRIER],
        )
    )
    assert reply.relative_accuracy == pytest.approx(0.01)
    assert {g.key.carrier for g in reply.groups} == {"alpha", "beta"}
    for group in reply.groups:
        metrics = {m.metric: m for m in group.metrics}
        delivered = metrics[readmodels_pb2.LATENCY_METRIC_SUBMIT_TO_DELIVERED]
        assert delivered.count > 0
        assert 0 < delivered.p50_ms <= delivered.p90_ms <= delivered.p99_ms


async def test_statistics_reject_invalid_input(stub: tuple[Stub, Runtime]) -> None:
    client, _ = stub
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.GetLatency(
            readmodels_pb2.StatisticsRequest(
                tenant="Not A Tenant",
                group_by=[readmodels_pb2.GROUPING_HOUR, readmodels_pb2.GROUPING_DAY, 42],  # type: ignore[list-item]
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(caught.value)
    assert set(found) == {"tenant", "start_time", "end_time", "group_by[2]", "group_by"}

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.GetCarrierPerformance(
            readmodels_pb2.StatisticsRequest(tenant=TENANT, start_time=ts(100), end_time=ts(100))
        )
    assert "end_time" in violations(caught.value)


async def test_queries_before_any_projection_are_empty(tmp_path: Path) -> None:
    runtime = build_runtime(
        make_settings(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, projections_in_server=False)
    )
    ledger_server = await create_server(runtime, "127.0.0.1:0")
    await ledger_server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger_server.port}") as channel:
            client = readmodels_pb2_grpc.ReadModelServiceStub(channel)
            listed = await client.ListMessages(readmodels_pb2.ListMessagesRequest(tenant=TENANT))
            assert list(listed.messages) == []
            assert listed.position == 0
            request = readmodels_pb2.StatisticsRequest(
                tenant=TENANT, start_time=ts(0), end_time=ts(3600)
            )
            performance = await client.GetCarrierPerformance(request)
            assert list(performance.groups) == []
            latency = await client.GetLatency(request)
            assert list(latency.groups) == []
    finally:
        await ledger_server.stop(0)
        runtime.close()
