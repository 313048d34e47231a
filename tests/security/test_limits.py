"""Per-client rate and in-flight limits: RESOURCE_EXHAUSTED with a retry delay."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.errors import ResourceExhaustedError
from ledger.security.interceptor import peer_host
from ledger.security.limits import ClientLimiter, ClientLimits
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.security.conftest import auth, start_secured, stop_secured


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limiter_rate_then_refill() -> None:
    clock = Clock()
    limiter = ClientLimiter(ClientLimits(10, 2, 100), clock=clock)
    for _ in range(2):
        limiter.acquire("a")
        limiter.release("a")
    with pytest.raises(ResourceExhaustedError) as caught:
        limiter.acquire("a")
    assert caught.value.retry_after_seconds == pytest.approx(0.1)
    limiter.acquire("b")
    clock.now = 0.1
    limiter.acquire("a")


def test_limiter_in_flight() -> None:
    limiter = ClientLimiter(ClientLimits(1000, 1000, 2), clock=Clock())
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(ResourceExhaustedError, match="2 calls in progress"):
        limiter.acquire("a")
    limiter.release("a")
    limiter.acquire("a")
    assert limiter.in_flight("a") == 2


def test_limiter_forgets_idle_clients() -> None:
    limiter = ClientLimiter(ClientLimits(1000, 1000, 5), max_clients=3, clock=Clock())
    limiter.acquire("busy")
    for name in ("a", "b", "c", "d", "e"):
        limiter.acquire(name)
        limiter.release(name)
    assert len(limiter._clients) == 3
    assert limiter.in_flight("busy") == 1


def test_limiter_peer_host() -> None:
    assert peer_host("ipv4:127.0.0.1:5000") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:5000") == "::1"
    assert peer_host("unix:/tmp/socket") == "unix:/tmp/socket"


async def test_limits_rate_over_rpc(tmp_path: Path, tokens_file: Path) -> None:
    secured = await start_secured(
        f"sqlite:///{tmp_path / 'ledger.db'}",
        tmp_path,
        tokens_file,
        client_rate_per_second=0.5,
        client_burst=2,
    )
    request = pb.GetMessageRequest(tenant="acme", message_id="m1")
    try:
        async with grpc.aio.insecure_channel(secured.address) as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            codes = []
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError) as first:
                    await stub.GetMessage(request, metadata=auth("reader"))
                codes.append(first.value.code())
            with pytest.raises(grpc.aio.AioRpcError) as limited:
                await stub.GetMessage(request, metadata=auth("reader"))
            # Another token has its own bucket.
            with pytest.raises(grpc.aio.AioRpcError) as other:
                await stub.GetMessage(request, metadata=auth("auditor"))
    finally:
        await stop_secured(secured)
    assert codes == [grpc.StatusCode.NOT_FOUND] * 2
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "'reader'" in (limited.value.details() or "")
    status = rpc_status.from_call(limited.value)
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details)
    assert 1.0 <= retry.retry_delay.ToTimedelta().total_seconds() <= 2.0
    assert other.value.code() == grpc.StatusCode.NOT_FOUND


async def test_limits_batch_size(tmp_path: Path, tokens_file: Path) -> None:
    secured = await start_secured(
        f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, tokens_file, batch_max_commands=3
    )
    batch = pb.ExecuteBatchRequest(commands=[pb.Command()] * 4)
    try:
        async with grpc.aio.insecure_channel(secured.address) as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ExecuteBatch(batch, metadata=auth("writer"))
    finally:
        await stop_secured(secured)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(caught.value)
    assert status is not None
    # A batch over the fixed limit can never pass: no retry delay, the quota named.
    assert not any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    quota = error_details_pb2.QuotaFailure()
    assert any(d.Unpack(quota) for d in status.details)
    assert [v.subject for v in quota.violations] == ["ExecuteBatch.commands"]
