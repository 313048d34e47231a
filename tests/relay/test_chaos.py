"""20,000 events through relay crashes and a NATS outage: each event once, in order.

Relay processes are started with ``smsledger relay`` and killed with SIGKILL
(by PID); the NATS server is this test's own. Ingestion runs throughout, and
``smsledger project --source nats`` feeds the read models from the stream; at
the end they must equal a rebuild from the log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from ledger.application.commands import Command
from ledger.relay import read_relay_status
from ledger.relay.envelope import PUBLISHED_TOPICS
from ledger.runtime import Runtime, build_runtime
from projections.database import DatabaseTarget
from projections.runner import read_positions
from tests.conftest import make_settings
from tests.relay.helpers import assert_exactly_once_in_order, log_event_ids, read_stream
from tests.relay.test_cli import SMSLEDGER, relay_env
from tests.relay.test_nats_projections import tables_equal_rebuild
from tests.relay.traffic import message_steps
from tests.support.servers import NatsServer

pytestmark = [pytest.mark.nats, pytest.mark.postgres, pytest.mark.slow]

EVENTS = 20_000
MESSAGES = 4_800  # the traffic mix averages about 4.3 events per message


@pytest.fixture
def pg_runtime(postgres_schema_url: str, tmp_path: Path) -> Iterator[Runtime]:
    built = build_runtime(make_settings(postgres_schema_url, tmp_path))
    try:
        yield built
    finally:
        built.close()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def paced_ingest(runtime: Runtime, per_second: float) -> None:
    planned = [message_steps(index, "c") for index in range(MESSAGES)]
    commands: list[Command] = []
    for round_index in range(max(len(steps) for steps in planned)):
        commands.extend(steps[round_index]() for steps in planned if round_index < len(steps))
    batch = 200
    started = time.monotonic()
    for start in range(0, len(commands), batch):
        runtime.ledger.execute(commands[start : start + batch])
        # Spread the run so that the crashes and the outage fall inside it.
        ahead = (start + batch) / per_second - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


async def wait_log(runtime: Runtime, position: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while runtime.store.max_position() < position:
        assert time.monotonic() < deadline, f"log did not reach {position}"
        await asyncio.sleep(0.05)


async def wait_publishing(
    runtime: Runtime, stream: str, epoch: int, seconds: float, log: Path | None = None
) -> None:
    """Wait until the relay of ``epoch`` has the turn and has moved the position."""
    deadline = time.monotonic() + seconds
    claimed_at: int | None = None
    while True:
        status = read_relay_status(runtime.store, stream)
        if status.epoch == epoch and claimed_at is None:
            claimed_at = status.acked_position
        if claimed_at is not None and status.acked_position > claimed_at:
            return
        tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
        assert time.monotonic() < deadline, (
            f"relay of epoch {epoch} did not publish: {status}\n{tail}"
        )
        await asyncio.sleep(0.05)


def start_relay(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen([SMSLEDGER, "relay"], env=env, stdout=output, stderr=output)


def start_projector(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [SMSLEDGER, "project", "--source", "nats"], env=env, stdout=output, stderr=output
        )


def nats_positions(runtime: Runtime) -> list[int]:
    conn = DatabaseTarget.from_env(runtime.store.config.eventsourcing_env()).connect()
    try:
        stored = read_positions(conn)
    finally:
        conn.close()
    return [position for name, (position, _) in stored.items() if name.endswith("@nats")]


async def consumer_drained(url: str, stream: str) -> bool:
    """Return True when the projector's consumer has nothing left to deliver or acknowledge."""
    client = await nats.connect(url)
    try:
        info = await client.jetstream().consumer_info(stream, "smsledger-projections")
    finally:
        await client.close()
    return info.num_pending == 0 and info.num_ack_pending == 0


def last_published(runtime: Runtime) -> int:
    """Return the log position of the last event the relay publishes."""
    last, after = 0, 0
    while page := runtime.store.notifications(after + 1, 5000):
        last = max((n.id for n in page if n.topic in PUBLISHED_TOPICS), default=last)
        after = page[-1].id
    return last


def kill(process: subprocess.Popen[bytes]) -> None:
    children = children_of(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    # The encoder process notices its parent is gone and exits.
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{child}").exists() for child in children):
        assert time.monotonic() < deadline, f"encoder processes {children} outlived the relay"
        time.sleep(0.1)


@pytest.mark.timeout(180)
async def test_chaos_every_event_once_in_order(
    pg_runtime: Runtime, throwaway_nats: NatsServer, tmp_path: Path
):
    stream = "CHAOS"
    env = relay_env(pg_runtime, throwaway_nats.url, stream)
    env["SMSLEDGER_RELAY_CHECK_INTERVAL_SECONDS"] = "1"
    env["SMSLEDGER_MASTER_KEY"] = pg_runtime.settings.master_key.get_secret_value()  # type: ignore[union-attr]
    env["SMSLEDGER_METRICS_ADDRESS"] = ""
    log = tmp_path / "relays.log"
    projector = start_projector(env, tmp_path / "projector.log")
    relay = start_relay(env, log)
    ingestion = asyncio.create_task(asyncio.to_thread(paced_ingest, pg_runtime, 2_500))
    try:
        await wait_log(pg_runtime, 4_000, 60)
        await wait_publishing(pg_runtime, stream, 1, 30, log)
        kill(relay)
        relay = start_relay(env, log)

        await wait_log(pg_runtime, 8_000, 60)
        await wait_publishing(pg_runtime, stream, 2, 30, log)
        throwaway_nats.stop()
        await asyncio.sleep(2)
        throwaway_nats.restart()

        await wait_log(pg_runtime, 13_000, 60)
        await wait_publishing(pg_runtime, stream, 2, 30, log)
        kill(relay)
        relay = start_relay(env, log)

        await ingestion
        last = pg_runtime.store.max_position()
        assert last >= EVENTS
        deadline = time.monotonic() + 60
        while read_relay_status(pg_runtime.store, stream).acked_position < last:
            assert relay.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        expected = log_event_ids(pg_runtime)
        deadline = time.monotonic() + 60
        # NATS-fed positions follow the Ledger-Position of the events applied,
        # and step one past the previous position for a copy that arrives
        # late, so they end at or above the last published position. The
        # projector is done when its consumer has nothing left to deliver or
        # to acknowledge.
        target = last_published(pg_runtime)
        while True:
            assert projector.poll() is None, (tmp_path / "projector.log").read_text()[-3000:]
            assert time.monotonic() < deadline, nats_positions(pg_runtime)
            positions = nats_positions(pg_runtime)
            caught_up = len(positions) == 3 and min(positions) >= target
            if caught_up and await consumer_drained(throwaway_nats.url, stream):
                break
            await asyncio.sleep(0.2)
    finally:
        for process in (relay, projector):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)

    assert len(expected) >= EVENTS
    streamed = await read_stream(throwaway_nats.url, stream, f"test.{stream}.>")
    assert_exactly_once_in_order(streamed, expected)
    assert read_relay_status(pg_runtime.store, stream).epoch == 3
    tables_equal_rebuild(pg_runtime)
