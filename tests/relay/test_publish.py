"""The relay publishes every lifecycle event once, in order, with its headers."""

from __future__ import annotations

from datetime import datetime

import nats
import pytest

from ledger.domain.audit import event_id
from ledger.relay import Relay, read_relay_status
from ledger.relay.envelope import PUBLISHED_TOPICS
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

pytestmark = pytest.mark.nats

EVENT_TYPES = {
    "Submitted",
    "Resubmitted",
    "CarrierAccepted",
    "Enroute",
    "Accepted",
    "Delivered",
    "Failed",
    "Expired",
    "Rejected",
    "Unknown",
    "RetryAdvised",
}


async def test_relay_publishes_every_event(runtime: Runtime, nats_url: str, stream_name: str):
    last = ingest(runtime, 60)
    config = make_config(nats_url, stream_name)
    relay = Relay(runtime.store, config)

    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)

    streamed = await read_stream(nats_url, stream_name, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(runtime))
    assert {s.event.type for s in streamed} == EVENT_TYPES
    positions = [int(s.headers["Ledger-Position"]) for s in streamed]
    assert positions == sorted(positions)


async def test_relay_message_matches_log_entry(runtime: Runtime, nats_url: str, stream_name: str):
    last = ingest(runtime, 10)
    config = make_config(nats_url, stream_name)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)

    streamed = {
        s.headers["Ledger-Position"]: s
        for s in await read_stream(nats_url, stream_name, config.stream_subjects)
    }
    for notification in runtime.store.notifications(1, 1000):
        assert notification.topic in PUBLISHED_TOPICS
        event = runtime.store.app.mapper.to_domain_event(notification)
        item = streamed[str(notification.id)]
        identifier = str(event_id(notification.originator_id, notification.originator_version))
        kind = type(event).__name__
        assert item.subject == f"{config.subject_prefix}.{event.tenant}.{kind}"
        assert item.headers["Nats-Msg-Id"] == identifier
        assert item.headers["ce-id"] == identifier
        assert item.headers["ce-specversion"] == "1.0"
        assert item.headers["ce-type"] == f"ledger.v1.{kind}"
        assert item.headers["ce-source"] == config.event_source
        assert item.headers["ce-subject"] == f"{event.tenant}/{event.message_id}"
        assert item.headers["content-type"] == "application/protobuf"
        assert item.headers["Ledger-Version"] == str(notification.originator_version)
        assert item.headers["Ledger-Aggregate-Id"] == str(notification.originator_id)
        assert item.headers["Ledger-Relay-Epoch"] == "1"
        assert datetime.fromisoformat(item.headers["ce-time"]) == event.timestamp
        assert item.event.event_id == identifier
        assert item.event.type == kind
        assert item.event.version == notification.originator_version
        assert item.event.message_id == event.message_id


async def test_relay_payload_hides_raw_and_number(
    runtime: Runtime, nats_url: str, stream_name: str
):
    last = ingest(runtime, 20)
    config = make_config(nats_url, stream_name)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)

    streamed = await read_stream(nats_url, stream_name, config.stream_subjects)
    submissions = [s.event.submission for s in streamed if s.event.HasField("submission")]
    assert submissions
    for submission in submissions:
        if submission.destination_masked:
            assert "x" in submission.destination_masked
    for item in streamed:
        raw = item.event.SerializeToString()
        assert b"+447700900123" not in raw
        assert b"+4915123456789" not in raw
        assert b"+12025550123" not in raw


async def test_relay_resumes_without_copies(runtime: Runtime, nats_url: str, stream_name: str):
    first = ingest(runtime, 30, prefix="a")
    config = make_config(nats_url, stream_name)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, first, task, 30)
    assert read_relay_status(runtime.store, stream_name).acked_position == first

    run_more = ingest(runtime, 60, prefix="b")
    second = Relay(runtime.store, config)
    async with running(second) as task:
        await wait_acked(second, run_more, task, 30)
    assert second.snapshot().counters.duplicates == 0
    assert second.snapshot().epoch == 2

    streamed = await read_stream(nats_url, stream_name, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(runtime))
    assert {s.headers["Ledger-Relay-Epoch"] for s in streamed} == {"1", "2"}


async def test_relay_status_reports_lag(runtime: Runtime, nats_url: str, stream_name: str):
    last = ingest(runtime, 15)
    before = read_relay_status(runtime.store, stream_name)
    assert before.lag == last
    assert before.epoch == 0

    config = make_config(nats_url, stream_name)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)
        ingest(runtime, 5, prefix="c")
        grown = runtime.store.max_position()
        await wait_acked(relay, grown, task, 30)

    after = read_relay_status(runtime.store, stream_name)
    assert after.lag == 0
    assert after.acked_position == grown
    assert after.epoch == 1
    assert after.heartbeat_at is not None


async def test_relay_creates_stream_settings(runtime: Runtime, nats_url: str, stream_name: str):
    last = ingest(runtime, 2)
    config = make_config(nats_url, stream_name, duplicate_window_seconds=3 * 3600)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 30)

    client = await nats.connect(nats_url)
    try:
        info = await client.jetstream().stream_info(stream_name)
    finally:
        await client.close()
    assert info.config.subjects == [config.stream_subjects]
    assert info.config.duplicate_window == 3 * 3600
    assert info.config.storage == "file"


async def test_relay_encoder_process(runtime: Runtime, nats_url: str, stream_name: str):
    last = ingest(runtime, 40)
    config = make_config(nats_url, stream_name, encoder_processes=1)
    relay = Relay(runtime.store, config)
    async with running(relay) as task:
        await wait_acked(relay, last, task, 60)

    streamed = await read_stream(nats_url, stream_name, config.stream_subjects)
    assert_exactly_once_in_order(streamed, log_event_ids(runtime))
