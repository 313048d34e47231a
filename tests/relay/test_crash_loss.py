"""The stream check republishes what a crashed NATS node lost.

JetStream acknowledges a publish before it reaches disk. The tests simulate the
loss of unsynced writes: they kill the server, cut the tail off its newest
message block file and start it again on the same store. The server then has
fewer messages than it acknowledged, and no longer drops their ids as
duplicates, as after a real crash.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import nats
import pytest

from ledger.relay import Relay
from ledger.runtime import Runtime
from tests.relay.helpers import (
    assert_exactly_once_in_order,
    ingest,
    log_event_ids,
    make_config,
    read_stream,
    running,
    wait_acked,
)
from tests.support.servers import NatsServer

pytestmark = [pytest.mark.nats, pytest.mark.slow]


def crash_and_lose_tail(server: NatsServer, stream: str, keep: float) -> None:
    """Kill the server, keep ``keep`` of its newest block file, start it again."""
    server.kill()
    blocks = sorted(
        (server.store_dir / "jetstream" / "$G" / "streams" / stream / "msgs").glob("*.blk"),
        key=lambda path: int(path.stem),
    )
    newest: Path = blocks[-1]
    size = newest.stat().st_size
    with newest.open("r+b") as handle:
        handle.truncate(int(size * keep))
    server.restart()


async def stored_count(url: str, stream: str) -> int:
    client = await nats.connect(url)
    try:
        info = await client.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await client.close()


async def test_running_relay_refills_lost_tail(
    runtime: Runtime, throwaway_nats: NatsServer, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="ledger.relay")
    config = make_config(throwaway_nats.url)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        last = ingest(runtime, 120)
        await wait_acked(relay, last, task, 30)
        # Let a check pass so that the loss hits verified messages too.
        await asyncio.sleep(1.5)
        expected = len(log_event_ids(runtime))

        crash_and_lose_tail(throwaway_nats, config.stream, keep=0.5)
        assert await stored_count(throwaway_nats.url, config.stream) < expected

        for _ in range(200):
            if await stored_count(throwaway_nats.url, config.stream) == expected:
                break
            await asyncio.sleep(0.1)
        more = ingest(runtime, 12, prefix="late")
        await wait_acked(relay, more, task, 30)
        await asyncio.sleep(1.5)

    streamed = await read_stream(throwaway_nats.url, config.stream, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(runtime))
    assert relay.snapshot().counters.republished > 0
    assert any("stream lacks events" in r.getMessage() for r in caplog.records)


async def test_restarted_relay_refills_lost_tail(runtime: Runtime, throwaway_nats: NatsServer):
    config = make_config(throwaway_nats.url)
    last = ingest(runtime, 100)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)
        await asyncio.sleep(1.5)

    crash_and_lose_tail(throwaway_nats, config.stream, keep=0.3)
    second = Relay(runtime.store, config)
    async with running(second) as task:
        await wait_acked(second, last, task, 30)
        for _ in range(100):
            if second.snapshot().counters.republished:
                break
            await asyncio.sleep(0.1)

    streamed = await read_stream(throwaway_nats.url, config.stream, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(runtime))
    assert second.snapshot().counters.republished > 0


async def test_deleted_stream_is_rebuilt(runtime: Runtime, throwaway_nats: NatsServer):
    config = make_config(throwaway_nats.url)
    last = ingest(runtime, 40)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)

    client = await nats.connect(throwaway_nats.url)
    try:
        await client.jetstream().delete_stream(config.stream)
    finally:
        await client.close()

    second = Relay(runtime.store, config)
    async with running(second) as task:
        for _ in range(100):
            if second.snapshot().counters.republished >= len(log_event_ids(runtime)):
                break
            await asyncio.sleep(0.1)

    streamed = await read_stream(throwaway_nats.url, config.stream, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(runtime))
