"""Shared pieces of the relay tests: names, configs, reading a stream back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from ledger.relay import Relay, RelayConfig
from ledger.runtime import Runtime
from ledger.v1 import events_pb2
from tests.relay.traffic import run_traffic


def unique_name() -> str:
    return f"T{uuid.uuid4().hex[:10].upper()}"


def make_config(nats_url: str, name: str | None = None, **overrides: Any) -> RelayConfig:
    """A relay config with its own stream and subjects and short intervals."""
    name = name or unique_name()
    values: dict[str, Any] = {
        "nats_servers": (nats_url,),
        "stream": name,
        "subject_prefix": f"test.{name}",
        "poll_interval_seconds": 0.05,
        "check_interval_seconds": 0.5,
        "publish_timeout_seconds": 2.0,
        "lease_seconds": 1.0,
        "commit_interval_seconds": 0.05,
        "encoder_processes": 0,
    }
    values.update(overrides)
    return RelayConfig(**values)


def ingest(runtime: Runtime, messages: int, prefix: str = "m") -> int:
    """Record mixed traffic of ``messages`` messages; return the log's highest position."""
    run_traffic(runtime.ledger, messages, prefix=prefix)
    return runtime.store.max_position()


@dataclass(frozen=True)
class Streamed:
    """One message read back from the stream."""

    sequence: int
    subject: str
    headers: dict[str, str]
    event: events_pb2.Event


async def read_stream(nats_url: str, stream: str, subjects: str) -> list[Streamed]:
    """Return every message of the stream in sequence order."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        last = info.state.last_seq
        found: list[Streamed] = []
        if info.state.messages == 0:
            return found
        done = asyncio.get_running_loop().create_future()

        async def collect(msg: Any) -> None:
            event = events_pb2.Event()
            event.ParseFromString(msg.data)
            found.append(Streamed(msg.metadata.sequence.stream, msg.subject, msg.headers, event))
            if msg.metadata.sequence.stream >= last and not done.done():
                done.set_result(None)

        sub = await js.subscribe(
            subjects,
            stream=stream,
            cb=collect,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        try:
            await asyncio.wait_for(done, 60)
        finally:
            await sub.unsubscribe()
        return found
    finally:
        await client.close()


async def delete_stream(nats_url: str, stream: str) -> None:
    client = await nats.connect(nats_url)
    try:
        with suppress(NotFoundError):
            await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


@asynccontextmanager
async def running(relay: Relay) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``relay`` for the duration of the block, then stop it."""
    task = asyncio.create_task(relay.run())
    try:
        yield task
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 30)


async def wait_acked(relay: Relay, position: int, task: asyncio.Task[None], seconds: float) -> None:
    """Wait until the relay's acknowledged position reaches ``position``."""
    deadline = time.monotonic() + seconds
    while relay.snapshot().acked_position < position:
        if task.done():
            task.result()
            raise AssertionError("relay stopped before reaching the position")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"relay acknowledged {relay.snapshot().acked_position} of {position} "
                f"within {seconds} s"
            )
        await asyncio.sleep(0.02)


def assert_exactly_once_in_order(streamed: list[Streamed], expected_ids: set[str]) -> None:
    """Check one copy per event id, every id present, and versions rising per message."""
    ids = [s.headers["Nats-Msg-Id"] for s in streamed]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicate messages"
    assert set(ids) == expected_ids, (
        f"missing {len(expected_ids - set(ids))}, unexpected {len(set(ids) - expected_ids)}"
    )
    last_version: dict[str, int] = {}
    for item in streamed:
        aggregate = item.headers["Ledger-Aggregate-Id"]
        version = int(item.headers["Ledger-Version"])
        assert version > last_version.get(aggregate, 0), (
            f"message {aggregate}: version {version} after {last_version[aggregate]} "
            f"at sequence {item.sequence}"
        )
        last_version[aggregate] = version


def log_event_ids(runtime: Runtime) -> set[str]:
    """Return the event id of every published log entry."""
    from ledger.domain.audit import event_id
    from ledger.relay.envelope import PUBLISHED_TOPICS

    ids: set[str] = set()
    after = 0
    while True:
        page = runtime.store.notifications(after + 1, 5000)
        if not page:
            return ids
        ids.update(
            str(event_id(n.originator_id, n.originator_version))
            for n in page
            if n.topic in PUBLISHED_TOPICS
        )
        after = page[-1].id
