"""Read models fed from the NATS stream equal a rebuild from the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import psycopg
import pytest

from ledger.relay import Relay
from ledger.runtime import Runtime, build_runtime
from projections.database import DatabaseTarget
from projections.nats_source import NatsProjectionWorker, NatsSourceOptions
from projections.rebuild import projection_status, rebuild
from tests.conftest import make_settings
from tests.projections.helpers import snapshot
from tests.relay.helpers import ingest, log_event_ids, make_config, running, wait_acked

pytestmark = [pytest.mark.nats, pytest.mark.slow]


@pytest.fixture
def file_runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    built = build_runtime(make_settings(database_url, tmp_path, expiry_grace_seconds=0))
    try:
        yield built
    finally:
        built.close()


def target_of(runtime: Runtime) -> DatabaseTarget:
    return DatabaseTarget.from_env(runtime.store.config.eventsourcing_env())


async def project_until(worker: NatsProjectionWorker, count: int, seconds: float) -> None:
    task = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + seconds
        while worker.applied < count:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"applied {worker.applied} of {count}"
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def tables_equal_rebuild(runtime: Runtime) -> None:
    target = target_of(runtime)
    rebuild(runtime.store, target, swap=False)
    conn = target.connect()
    try:
        live = snapshot(conn)
        rebuilt = snapshot(conn, shadow=True)
    finally:
        conn.close()
    assert set(live) == set(rebuilt)
    for table in live:
        assert live[table], f"table {table} is empty"
        assert live[table] == rebuilt[table], f"table {table} differs from the rebuild"


async def test_nats_projections_equal_rebuild(
    file_runtime: Runtime, nats_url: str, stream_name: str
):
    last = ingest(file_runtime, 70)
    config = make_config(nats_url, stream_name)
    relay = Relay(file_runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)

    options = NatsSourceOptions(
        servers=(nats_url,), stream=stream_name, subjects=config.stream_subjects, batch_size=50
    )
    worker = NatsProjectionWorker(file_runtime.store, target_of(file_runtime), options)
    await project_until(worker, len(log_event_ids(file_runtime)), 60)
    # Inferred expiries and message-wide receipts of multipart messages.
    assert worker.read_from_log > 0
    tables_equal_rebuild(file_runtime)


async def test_nats_projections_ignore_copies(
    file_runtime: Runtime, nats_url: str, stream_name: str
):
    last = ingest(file_runtime, 35)
    config = make_config(nats_url, stream_name)
    relay = Relay(file_runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)
    expected = len(log_event_ids(file_runtime))

    options = NatsSourceOptions(
        servers=(nats_url,), stream=stream_name, subjects=config.stream_subjects, batch_size=40
    )
    target = target_of(file_runtime)
    await project_until(NatsProjectionWorker(file_runtime.store, target, options), expected, 60)

    # Copies past the duplicate window reach consumers with new message ids,
    # and a consumer deleted and created again gets every message redelivered.
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        first = await js.get_msg(stream_name, seq=1)
        for copy in range(3):
            headers = dict(first.headers or {})
            headers["Nats-Msg-Id"] = f"copy-{copy}"
            await js.publish(first.subject, first.data, headers=headers)
        await js.delete_consumer(stream_name, options.consumer)
    finally:
        await client.close()
    again = NatsProjectionWorker(file_runtime.store, target, options)
    with pytest.raises(AssertionError, match="applied 0 of 1"):
        await project_until(again, 1, 5)
    tables_equal_rebuild(file_runtime)


async def test_nats_projections_wait_for_missing_version(
    file_runtime: Runtime, nats_url: str, stream_name: str
):
    last = ingest(file_runtime, 14)
    config = make_config(nats_url, stream_name)
    relay = Relay(file_runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)

    # Move one message's second event to the end of the stream, as a NATS
    # node that lost it would after the relay published it again.
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        moved = None
        for sequence in range(1, 60):
            stored = await js.get_msg(stream_name, seq=sequence)
            if (stored.headers or {}).get("Ledger-Version") == "2":
                moved = stored
                break
        assert moved is not None
        await js.delete_msg(stream_name, moved.seq)
        headers = dict(moved.headers or {})
        headers["Nats-Msg-Id"] = "moved-" + headers["Nats-Msg-Id"]
        await js.publish(moved.subject, moved.data, headers=headers)
    finally:
        await client.close()

    options = NatsSourceOptions(
        servers=(nats_url,),
        stream=stream_name,
        subjects=config.stream_subjects,
        batch_size=20,
        retry_delay_seconds=0.2,
    )
    worker = NatsProjectionWorker(file_runtime.store, target_of(file_runtime), options)
    await project_until(worker, len(log_event_ids(file_runtime)), 60)
    tables_equal_rebuild(file_runtime)


def consume_positions(runtime: Runtime, count: int) -> None:
    """Take ``count`` log positions without writing events, as rolled-back writers do."""
    url, schema = runtime.settings.database_url.split("?schema=")
    with psycopg.connect(url) as conn:
        for _ in range(count):
            with conn.transaction(force_rollback=True):
                conn.execute(
                    f'INSERT INTO "{schema}".ledger_events '
                    "(originator_id, originator_version, topic, state) VALUES (%s, 1, 'x', 'x')",
                    (uuid.uuid4(),),
                )


@pytest.mark.postgres
async def test_nats_lag_zero_over_gaps(
    postgres_schema_url: str, tmp_path: Path, nats_url: str, stream_name: str
):
    runtime = build_runtime(make_settings(postgres_schema_url, tmp_path))
    try:
        ingest(runtime, 10)
        consume_positions(runtime, 3)
        last = ingest(runtime, 10, prefix="n")
        config = make_config(nats_url, stream_name)
        relay = Relay(runtime.store, config)
        async with running(relay) as task:
            await wait_acked(relay, last, task, 30)
        options = NatsSourceOptions(
            servers=(nats_url,), stream=stream_name, subjects=config.stream_subjects
        )
        worker = NatsProjectionWorker(runtime.store, target_of(runtime), options)
        await project_until(worker, len(log_event_ids(runtime)), 60)

        statuses = projection_status(runtime.store, target_of(runtime))
        fed = [s for s in statuses if s.name.endswith("@nats")]
        assert len(fed) == 3
        assert [s.lag for s in fed] == [0, 0, 0]
        assert not any(s.standby for s in fed)
        # Positions that only the log-fed worker would move stand by.
        assert all(s.standby for s in statuses if "@" not in s.name)
    finally:
        runtime.close()


async def test_nats_projections_wait_for_the_stream(
    file_runtime: Runtime, nats_url: str, stream_name: str, caplog: pytest.LogCaptureFixture
):
    last = ingest(file_runtime, 14)
    config = make_config(nats_url, stream_name)
    options = NatsSourceOptions(
        servers=(nats_url,), stream=stream_name, subjects=config.stream_subjects
    )
    worker = NatsProjectionWorker(file_runtime.store, target_of(file_runtime), options)
    caplog.set_level(logging.INFO, logger="projections.nats_source")
    task = asyncio.create_task(worker.run())
    try:
        # The worker starts before the relay has created the stream.
        await asyncio.sleep(2.0)
        assert not task.done(), task.exception()
        relay = Relay(file_runtime.store, config)
        async with running(relay) as relaying:
            await wait_acked(relay, last, relaying, 30)
        created = time.monotonic()
        expected = len(log_event_ids(file_runtime))
        while worker.applied < expected:
            assert not task.done(), task.exception()
            assert time.monotonic() - created < 10, f"applied {worker.applied} of {expected}"
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    assert worker.restarts == 0
    records = [r for r in caplog.records if r.name == "projections.nats_source"]
    assert not [r for r in records if r.levelno >= logging.WARNING]
    waiting = [r for r in records if r.getMessage().startswith("waiting for stream")]
    assert len(waiting) == 1
    assert stream_name in waiting[0].getMessage()
