"""One relay publishes at a time; a relay that lost its turn stops publishing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.relay import Relay, RelayState, read_relay_status
from ledger.relay.database import FencedError, PostgresRelayDatabase, postgres_conninfo
from ledger.runtime import Runtime, build_runtime
from tests.conftest import make_settings
from tests.relay.helpers import (
    assert_exactly_once_in_order,
    ingest,
    log_event_ids,
    make_config,
    read_stream,
    running,
    wait_acked,
)
from tests.support.servers import PostgresServer, require_or_skip, start_postgres

pytestmark = [pytest.mark.nats, pytest.mark.postgres]


@pytest.fixture
def pg_runtime(postgres_schema_url: str, tmp_path: Path) -> Iterator[Runtime]:
    built = build_runtime(make_settings(postgres_schema_url, tmp_path))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except (RuntimeError, OSError) as error:
        require_or_skip(f"cannot start a throwaway PostgreSQL: {error}")
        return
    try:
        yield server
    finally:
        server.destroy()


async def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_second_relay_stands_by_then_takes_over(
    pg_runtime: Runtime, nats_url: str, stream_name: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="ledger.relay")
    config = make_config(nats_url, stream_name)
    first = Relay(pg_runtime.store, config, owner="first")
    second = Relay(pg_runtime.store, config, owner="second")
    first_task = asyncio.create_task(first.run())
    await wait_for(lambda: first.state is RelayState.PUBLISHING, 10, "the first relay")
    async with running(second) as second_task:
        last = ingest(pg_runtime, 40, prefix="a")
        await wait_acked(first, last, first_task, 30)
        await wait_for(lambda: second.state is RelayState.STANDBY, 10, "the second relay")
        assert first.state is RelayState.PUBLISHING

        await first.stop()
        await asyncio.wait_for(first_task, 10)
        more = ingest(pg_runtime, 40, prefix="b")
        await wait_acked(second, more, second_task, 30)
        assert second.snapshot().epoch == 2

    streamed = await read_stream(nats_url, stream_name, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(pg_runtime))
    status = read_relay_status(pg_runtime.store, stream_name)
    assert status.owner == "second"
    assert any("waiting for the previous relay's lease" in r.getMessage() for r in caplog.records)


async def test_relay_stops_when_epoch_superseded(
    pg_runtime: Runtime, nats_url: str, stream_name: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="ledger.relay")
    config = make_config(nats_url, stream_name)
    relay = Relay(pg_runtime.store, config)
    async with running(relay) as task:
        last = ingest(pg_runtime, 20, prefix="a")
        await wait_acked(relay, last, task, 30)

        # Another relay raises the epoch, as one that took over would.
        conninfo, schema = postgres_conninfo(pg_runtime.store.config)
        intruder = PostgresRelayDatabase(conninfo, schema, stream_name)
        try:
            claimed = await intruder.claim("intruder", config.lease_seconds)
        finally:
            await intruder.close()
        assert claimed.record.epoch == 2

        await wait_for(lambda: relay.snapshot().epoch == 3, 15, "the relay to claim again")
        more = ingest(pg_runtime, 20, prefix="b")
        await wait_acked(relay, more, task, 30)

    messages = [r.getMessage() for r in caplog.records]
    assert "relay lost its turn; it stopped publishing" in messages
    streamed = await read_stream(nats_url, stream_name, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(pg_runtime))


async def test_fenced_relay_cannot_store_position(pg_runtime: Runtime, stream_name: str):
    conninfo, schema = postgres_conninfo(pg_runtime.store.config)
    old = PostgresRelayDatabase(conninfo, schema, stream_name)
    new = PostgresRelayDatabase(conninfo, schema, stream_name)
    await old.setup()
    try:
        assert await old.try_acquire()
        assert not await new.try_acquire()
        stale = (await old.claim("old", 1.0)).record.epoch
        await old.save_position(stale, 10)

        await old.release()
        assert await new.try_acquire()
        current = (await new.claim("new", 1.0)).record.epoch
        with pytest.raises(FencedError):
            await old.save_position(stale, 99)
        await new.save_position(current, 11)
        assert read_relay_status(pg_runtime.store, stream_name).acked_position == 11
    finally:
        await old.close()
        await new.close()


async def test_lost_lock_connection_ends_turn(
    own_postgres: PostgresServer, nats_url: str, stream_name: str, tmp_path: Path
):
    runtime = build_runtime(make_settings(own_postgres.url, tmp_path))
    try:
        config = make_config(nats_url, stream_name)
        relay = Relay(runtime.store, config)
        async with running(relay) as task:
            last = ingest(runtime, 20, prefix="a")
            await wait_acked(relay, last, task, 30)
            with psycopg.connect(own_postgres.url, autocommit=True) as admin:
                terminated = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'smsledger-relay'"
                ).fetchall()
            assert terminated
            await wait_for(lambda: relay.snapshot().epoch == 2, 15, "the relay to claim again")
            more = ingest(runtime, 20, prefix="b")
            await wait_acked(relay, more, task, 30)

        streamed = await read_stream(nats_url, stream_name, config.stream_subjects)
        assert_exactly_once_in_order(streamed, log_event_ids(runtime))
    finally:
        runtime.close()


async def test_sqlite_second_relay_fences_first(tmp_path: Path, nats_url: str, stream_name: str):
    runtime = build_runtime(make_settings(f"sqlite:///{tmp_path / 'l.db'}", tmp_path))
    try:
        config = make_config(nats_url, stream_name)
        first = Relay(runtime.store, config)
        first_task = asyncio.create_task(first.run())
        await wait_for(lambda: first.state is RelayState.PUBLISHING, 10, "the first relay")
        second = Relay(runtime.store, config)
        async with running(second) as second_task:
            with pytest.raises(FencedError):
                await asyncio.wait_for(first_task, 10)
            last = ingest(runtime, 10)
            await wait_acked(second, last, second_task, 30)
    finally:
        runtime.close()
