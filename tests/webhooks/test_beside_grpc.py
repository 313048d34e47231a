"""The webhook endpoint inside the gRPC server's process, loop and group commit."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from ledger.domain.outcomes import Status
from ledger.runtime import build_runtime
from ledger.server.app import create_server
from tests.conftest import make_settings
from tests.webhooks.calls import make
from tests.webhooks.conftest import PUBLIC, prepare, status_of, write_connections


async def test_endpoint_shares_group_commit(tmp_path: Path) -> None:
    runtime = build_runtime(
        make_settings(
            f"sqlite:///{tmp_path / 'ledger.db'}",
            tmp_path,
            connections_file=write_connections(tmp_path),
            webhook_public_base_url=PUBLIC,
        )
    )
    server = await create_server(runtime, "127.0.0.1:0", webhook_address="127.0.0.1:0")
    assert server.webhooks is not None
    await server.start()
    try:
        assert server.webhooks.handler.committer is server.committer
        prepare(runtime, "m-1", "twilio-a", "SM-GRPC-1")
        call = make("twilio", "SM-GRPC-1")
        url = f"http://127.0.0.1:{server.webhooks.port}{call.path}"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=call.body, headers=call.headers) as response,
        ):
            assert response.status == 200
        assert server.committer.stats.commands == 1
        assert status_of(runtime, "m-1") is Status.DELIVERED
    finally:
        await server.stop(0)
        runtime.close()


async def test_no_webhook_connections_no_endpoint(tmp_path: Path) -> None:
    runtime = build_runtime(make_settings(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path))
    server = await create_server(runtime, "127.0.0.1:0", webhook_address="127.0.0.1:0")
    try:
        assert server.webhooks is None
    finally:
        runtime.close()
