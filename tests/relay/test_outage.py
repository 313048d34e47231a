"""A NATS outage delays publication but never blocks writes or loses events."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ledger.relay import Relay, RelayState, read_relay_status
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


async def wait_state(relay: Relay, state: RelayState, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while relay.state is not state:
        assert time.monotonic() < deadline, f"relay is {relay.state}, not {state}"
        await asyncio.sleep(0.02)


async def test_outage_writes_continue_and_relay_catches_up(
    runtime: Runtime, throwaway_nats: NatsServer, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="ledger.relay")
    config = make_config(throwaway_nats.url)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        first = ingest(runtime, 30, prefix="a")
        await wait_acked(relay, first, task, 30)

        throwaway_nats.stop()
        started = time.monotonic()
        during = await asyncio.to_thread(ingest, runtime, 60, "b")
        assert time.monotonic() - started < 20, "writes waited for NATS"
        await wait_state(relay, RelayState.RECOVERING, 10)
        await asyncio.sleep(1.5)
        assert relay.snapshot().acked_position == first
        assert relay.snapshot().lag == during - first
        assert read_relay_status(runtime.store, config.stream).lag == during - first

        throwaway_nats.restart()
        await wait_acked(relay, during, task, 30)

    streamed = await read_stream(throwaway_nats.url, config.stream, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(runtime))
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("NATS connection lost; reconnecting") == 1
    assert messages.count("NATS connection restored") == 1
    assert messages.count("publishing interrupted; resuming from the acknowledged position") == 1
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 4, [r.getMessage() for r in warnings]


async def test_relay_waits_for_nats_at_start(runtime: Runtime, throwaway_nats: NatsServer):
    last = ingest(runtime, 10)
    throwaway_nats.stop()
    config = make_config(throwaway_nats.url)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await asyncio.sleep(1.0)
        assert relay.snapshot().acked_position == 0
        assert not task.done()
        throwaway_nats.restart()
        await wait_acked(relay, last, task, 30)

    streamed = await read_stream(throwaway_nats.url, config.stream, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(runtime))


async def test_relay_stops_while_nats_down(runtime: Runtime, throwaway_nats: NatsServer):
    ingest(runtime, 5)
    throwaway_nats.stop()
    relay = Relay(runtime.store, make_config(throwaway_nats.url))
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.5)
    await relay.stop()
    await asyncio.wait_for(task, 10)
    assert relay.state is RelayState.STOPPED
