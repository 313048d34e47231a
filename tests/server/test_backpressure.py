"""Group-commit backpressure seen by gRPC clients.

When more commands wait for a transaction than ``SMSLEDGER_COMMIT_MAX_QUEUED``
allows, a call is refused whole with RESOURCE_EXHAUSTED and a RetryInfo
delay, before anything of it reaches storage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.runtime import Runtime, build_runtime
from ledger.server.app import create_server
from ledger.v1 import events_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from tests.conftest import make_settings
from tests.server.test_api import accept, submit

CALLS = 16
MAX_QUEUED = 4
STORE_DELAY_SECONDS = 0.5
CALL_TIMEOUT_SECONDS = 30.0


@pytest.fixture
def slow_runtime(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """A ledger with a small commit queue whose store takes half a second per write."""
    built = build_runtime(
        make_settings(database_url, tmp_path, commit_max_queued=MAX_QUEUED, webhook_address="")
    )
    save = built.store.save

    def slow_save(*args: Any, **kwargs: Any) -> Any:
        time.sleep(STORE_DELAY_SECONDS)
        return save(*args, **kwargs)

    monkeypatch.setattr(built.store, "save", slow_save)
    try:
        yield built
    finally:
        built.close()


def submit_and_accept(message_id: str) -> pb.ExecuteBatchRequest:
    """Build one call of two commands: they are queued, refused or recorded together."""
    return pb.ExecuteBatchRequest(
        commands=[
            pb.Command(submit=submit(message_id)),
            pb.Command(acceptance=accept(message_id, f"C-{message_id}")),
        ]
    )


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


async def test_full_commit_queue_refuses_whole_calls(slow_runtime: Runtime) -> None:
    server = await create_server(slow_runtime, "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
            ids = [f"bp-{i}" for i in range(CALLS)]
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        ledger.ExecuteBatch(submit_and_accept(i), timeout=CALL_TIMEOUT_SECONDS)
                        for i in ids
                    ),
                    return_exceptions=True,
                ),
                timeout=CALL_TIMEOUT_SECONDS + 5,
            )

            refused = []
            recorded = []
            for message_id, result in zip(ids, results, strict=True):
                if isinstance(result, grpc.aio.AioRpcError):
                    assert result.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, result
                    assert "waiting to be committed" in (result.details() or "")
                    assert retry_delay(result) == pytest.approx(0.5)
                    refused.append(message_id)
                else:
                    assert not isinstance(result, BaseException), result
                    assert [r.status.code for r in result.results] == [0, 0]
                    recorded.append(message_id)
            assert refused, "no call was refused: the queue limit was never reached"
            assert recorded, "every call was refused"
            assert server.committer.stats.rejected == 2 * len(refused)

            for message_id in recorded:
                found = await ledger.GetMessage(
                    pb.GetMessageRequest(tenant="acme", message_id=message_id), timeout=10
                )
                assert found.status == events_pb2.MESSAGE_STATUS_ACCEPTED
            for message_id in refused:
                with pytest.raises(grpc.aio.AioRpcError) as missing:
                    await ledger.GetMessage(
                        pb.GetMessageRequest(tenant="acme", message_id=message_id), timeout=10
                    )
                assert missing.value.code() == grpc.StatusCode.NOT_FOUND

            # Once the queue drains, a refused call goes through on retry.
            retried = await ledger.ExecuteBatch(
                submit_and_accept(refused[0]), timeout=CALL_TIMEOUT_SECONDS
            )
            assert [r.status.code for r in retried.results] == [0, 0]
    finally:
        await server.stop(0)
