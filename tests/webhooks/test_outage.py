"""A database outage between receipt and commit: retryable response, nothing half-done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ledger.domain.outcomes import Status
from ledger.runtime import build_runtime
from tests.conftest import make_settings
from tests.support.servers import require_or_skip, throwaway_postgres
from tests.webhooks.calls import Call, make
from tests.webhooks.conftest import (
    PUBLIC,
    TENANT,
    prepare,
    receipt_events,
    start_endpoint,
    status_of,
    unparsed_count,
    write_connections,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def send(session: aiohttp.ClientSession, url: str, call: Call) -> tuple[int, str]:
    async with session.post(url + call.path, data=call.body, headers=call.headers) as response:
        return response.status, await response.text()


async def test_database_killed_before_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        context = throwaway_postgres()
        postgres = context.__enter__()
    except (RuntimeError, OSError) as error:
        require_or_skip(f"cannot start a throwaway PostgreSQL server: {error}")
        return
    try:
        runtime = build_runtime(
            make_settings(
                postgres.url,
                tmp_path,
                connections_file=write_connections(tmp_path),
                webhook_public_base_url=PUBLIC,
                webhook_request_timeout_seconds=20.0,
                db_pool_size=2,
            )
        )
        prepare(runtime, "m-outage", "jasmin-a", "J-OUT-1")
        server, committer, metrics = await start_endpoint(runtime)
        execute = runtime.ledger.execute
        calls: list[int] = []

        def kill_then_execute(commands: Any) -> Any:
            # The callback was received and verified; the database dies before
            # its transaction commits.
            if not calls:
                postgres.stop("immediate")
            calls.append(len(commands))
            return execute(commands)

        monkeypatch.setattr(runtime.ledger, "execute", kill_then_execute)
        url = f"http://127.0.0.1:{server.port}"
        call = make("jasmin", "J-OUT-1")
        try:
            async with aiohttp.ClientSession() as session:
                status, body = await send(session, url, call)
                assert status == 503
                assert body != "ACK/Jasmin"
                assert metrics.total("unavailable") == 1

                postgres.start()
                assert status_of(runtime, "m-outage") is Status.ACCEPTED
                assert receipt_events(runtime, "m-outage") == []
                assert unparsed_count(runtime, "jasmin-a") == 0
                assert runtime.store.list_parked(TENANT, 2**62, 10) == []

                # Jasmin retries the same callback after its retry_delay.
                assert await send(session, url, call) == (200, "ACK/Jasmin")
                assert await send(session, url, call) == (200, "ACK/Jasmin")
            assert status_of(runtime, "m-outage") is Status.DELIVERED
            assert receipt_events(runtime, "m-outage") == ["Delivered"]
            assert metrics.total("recorded") == 1
            assert metrics.total("duplicate") == 1
        finally:
            await server.stop()
            await committer.stop()
            runtime.close()
    finally:
        context.__exit__(None, None, None)
