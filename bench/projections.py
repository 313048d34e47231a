"""Read-model benchmarks on PostgreSQL: rebuild rate and live lag under load.

1. Rebuild: writes a log of mixed traffic with ``Ledger.execute`` (delivered
   messages with an ENROUTE receipt, retries on another carrier, permanent
   failures, rejections, multipart messages, pending ones), then rebuilds all
   three read models from it, three times. As a baseline, each run first
   reads the whole notification log in pages (``LedgerStore.notifications``,
   no decoding) and the script prints rebuild rate / read rate.
2. Live lag: a writer process ingests at a fixed event rate while a
   ``ProjectionWorker`` (LISTEN/NOTIFY) follows the log in this process, three
   runs. The lag of a batch is the time from the ledger recording its oldest
   event to the batch's commit. Every event of the batch is counted with that
   lag, which is an upper bound of its own lag.

Every figure printed is the median of the runs. The schema ``bench_projections_<pid>``
is created in the database and dropped at the end.

Usage: .venv/bin/python bench/projections.py [--url URL] [--messages N]
       [--rate EVENTS_PER_S] [--seconds S] [--runs N]
"""

# ruff: noqa: E402 - the imports below must follow the sys.path fix.
from __future__ import annotations

import sys
from pathlib import Path

# Python puts this script's folder first on sys.path, and this file's name
# would then shadow the ``projections`` package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import base64
import multiprocessing
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from ledger.application.commands import Command, RecordAcceptance, RecordReceipt, SubmitMessage
from ledger.application.results import CommandResult
from ledger.domain.outcomes import Status
from ledger.runtime import Runtime, build_runtime
from ledger.settings import Settings
from projections.database import DatabaseTarget
from projections.rebuild import paused_gc, rebuild
from projections.runner import BatchResult
from projections.worker import ProjectionWorker, WorkerOptions

CARRIERS = ("alpha", "beta", "gamma", "delta")
NUMBERS = ("+447700900123", "+4915123456789", "+12025550123", "+33612345678")
BASE = datetime(2026, 3, 2, tzinfo=UTC)


def open_runtime(url: str, key: str, data_dir: str) -> Runtime:
    settings = Settings(
        database_url=url,
        master_key=key,  # type: ignore[arg-type]
        data_dir=Path(data_dir),
        _env_file=None,  # type: ignore[call-arg]
    )
    return build_runtime(settings)


def script(index: int, rng: random.Random, start: datetime) -> list[list[Command]]:
    """Return the commands of one message, grouped in the rounds that send them."""
    mid = f"b{index:08d}"
    carrier = CARRIERS[index % len(CARRIERS)]
    other = CARRIERS[(index + 1) % len(CARRIERS)]
    number = NUMBERS[rng.randrange(len(NUMBERS))]
    t0 = start + timedelta(milliseconds=index * 37)
    ok = t0 + timedelta(milliseconds=rng.randrange(50, 900))
    done = ok + timedelta(milliseconds=rng.randrange(500, 90_000))
    kind = rng.random()
    segments = 3 if 0.90 <= kind < 0.95 else 1

    def sub(attempt: int = 1, on: str = carrier, at: datetime = t0) -> Command:
        return SubmitMessage(
            tenant="bench",
            message_id=mid,
            destination=number,
            sender="BENCH",
            carrier=on,
            segment_count=segments,
            attempt=attempt,
            submitted_at=at,
        )

    def acc(attempt: int = 1, at: datetime = ok) -> Command:
        ids = tuple((n, f"{mid}-{attempt}-{n}") for n in range(1, segments + 1))
        return RecordAcceptance(
            tenant="bench", message_id=mid, segments=ids, attempt=attempt, accepted_at=at
        )

    def rcpt(status: Status, at: datetime, **fields: object) -> Command:
        return RecordReceipt(
            tenant="bench",
            status=status,
            message_id=mid,
            occurred_at=at,
            final=status is not Status.ENROUTE,
            **fields,  # type: ignore[arg-type]
        )

    if kind < 0.70:
        return [[sub()], [acc()], [rcpt(Status.ENROUTE, ok)], [rcpt(Status.DELIVERED, done)]]
    if kind < 0.80:
        retry = done + timedelta(seconds=5)
        return [
            [sub()],
            [acc()],
            [rcpt(Status.FAILED, done, permanent=False, error_code="69")],
            [sub(2, other, retry)],
            [acc(2, retry + timedelta(milliseconds=400))],
            [rcpt(Status.DELIVERED, retry + timedelta(seconds=4), attempt=2)],
        ]
    if kind < 0.85:
        return [[sub()], [acc()], [rcpt(Status.FAILED, done, permanent=True, error_code="1")]]
    if kind < 0.90:
        return [[sub()], [rcpt(Status.REJECTED, ok, error_code="R1")]]
    if kind < 0.95:
        return [
            [sub()],
            [acc()],
            *([rcpt(Status.DELIVERED, done, attempt=1, segment=n)] for n in (1, 2, 3)),
        ]
    return [[sub()], [acc()]]


def execute(runtime: Runtime, commands: list[Command]) -> None:
    for outcome in runtime.ledger.execute(commands):
        if not isinstance(outcome, CommandResult):
            raise RuntimeError(f"command failed: {outcome}")


def write_log(runtime: Runtime, messages: int, seed: int) -> None:
    """Write ``messages`` scripts in waves of 500 messages, round by round."""
    rng = random.Random(seed)
    for wave in range(0, messages, 500):
        scripts = [script(i, rng, BASE) for i in range(wave, min(messages, wave + 500))]
        for k in range(max(len(s) for s in scripts)):
            commands = [c for s in scripts if k < len(s) for c in s[k]]
            for start in range(0, len(commands), 250):
                execute(runtime, commands[start : start + 250])


def read_rate(runtime: Runtime, page: int = 2000) -> float:
    """Return the rate of reading the whole notification log, undecoded."""
    started = time.perf_counter()
    position, count = 0, 0
    while True:
        notifications = runtime.store.notifications(position + 1, page)
        if not notifications:
            break
        count += len(notifications)
        position = notifications[-1].id
    return count / (time.perf_counter() - started)


def bench_rebuild(runtime: Runtime, target: DatabaseTarget, runs: int) -> None:
    events = runtime.store.max_position()
    reads, rebuilds = [], []
    for run in range(runs):
        reads.append(read_rate(runtime))
        # As `smsledger projections rebuild` does.
        with paused_gc():
            result = rebuild(runtime.store, target, batch_size=5000)
        rebuilds.append(result.events / result.seconds)
        print(
            f"  run {run + 1}: log read {reads[-1]:,.0f} events/s, "
            f"rebuild {rebuilds[-1]:,.0f} events/s ({result.events} events, {result.seconds:.1f} s)"
        )
    read, built = statistics.median(reads), statistics.median(rebuilds)
    print(
        f"rebuild of all three read models from {events} events: median {built:,.0f} events/s "
        f"(target 20,000); raw log read {read:,.0f} events/s; ratio {built / read:.2f}"
    )


def paced_writer(url: str, key: str, data_dir: str, rate: int, seconds: float, seed: int) -> None:
    """Ingest about ``rate`` events per second for ``seconds`` (runs in its own process)."""
    runtime = open_runtime(url, key, data_dir)
    rng = random.Random(seed)
    tick = 0.1
    start = datetime.now(UTC)
    scripts: list[list[list[Command]]] = []
    index = seed * 10_000_000
    began = time.monotonic()
    sent = 0
    while time.monotonic() - began < seconds:
        target_count = int((time.monotonic() - began + tick) * rate)
        commands: list[Command] = []
        while sent + len(commands) < target_count:
            # Each script contributes its next round; new scripts fill the gap.
            if not scripts or len(commands) >= len(scripts):
                scripts.append(script(index, rng, start))
                index += 1
            for item in scripts:
                if item and sent + len(commands) < target_count:
                    commands.extend(item.pop(0))
            scripts = [s for s in scripts if s]
        for chunk in range(0, len(commands), 500):
            execute(runtime, commands[chunk : chunk + 500])
        sent += len(commands)
        pause = began + (sent / rate) - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    runtime.close()


def lag_run(
    runtime: Runtime,
    target: DatabaseTarget,
    writer_args: tuple[str, str, str, int, float, int],
) -> tuple[float, list[float]]:
    """Follow the log while a writer process ingests; return its rate and each event's lag."""
    lags: list[tuple[float, int]] = []
    lock = threading.Lock()
    measuring = threading.Event()

    def on_batch(result: BatchResult) -> None:
        if measuring.is_set() and result.first_recorded_at is not None:
            lag = time.time() - result.first_recorded_at.timestamp()
            with lock:
                lags.append((lag, result.events))

    worker = ProjectionWorker(
        runtime.store, target, WorkerOptions(poll_interval_seconds=1.0), on_batch
    )

    async def run() -> float:
        task = asyncio.create_task(worker.run())
        while not worker.active:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(_catch_up, worker, runtime)
        measuring.set()
        start = runtime.store.max_position()
        process = multiprocessing.get_context("spawn").Process(
            target=paced_writer, args=writer_args
        )
        began = time.monotonic()
        process.start()
        await asyncio.to_thread(process.join)
        elapsed = time.monotonic() - began
        ingested = runtime.store.max_position() - start
        await asyncio.to_thread(_catch_up, worker, runtime)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return ingested / elapsed

    rate = asyncio.run(run())
    return rate, sorted(lag for lag, count in lags for _ in range(count))


def bench_lag(
    runtime: Runtime,
    target: DatabaseTarget,
    url: str,
    key: str,
    data_dir: str,
    args: argparse.Namespace,
) -> None:
    p99s, p50s, rates = [], [], []
    for run in range(args.runs):
        writer_args = (url, key, data_dir, args.rate, args.seconds, run + 1)
        rate, lags = lag_run(runtime, target, writer_args)
        p50 = lags[len(lags) // 2]
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        p50s.append(p50)
        p99s.append(p99)
        rates.append(rate)
        print(
            f"  run {run + 1}: ingest {rate:,.0f} events/s, lag p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms ({len(lags)} events)"
        )
    print(
        f"live lag while ingesting {statistics.median(rates):,.0f} events/s "
        f"(asked {args.rate}): median p99 {statistics.median(p99s) * 1000:.0f} ms "
        f"(target < 1000 ms), median p50 {statistics.median(p50s) * 1000:.0f} ms"
    )


def _catch_up(worker: ProjectionWorker, runtime: Runtime, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while worker.position < runtime.store.max_position():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not catch up")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--messages", type=int, default=30_000, help="messages in the rebuild log")
    parser.add_argument("--rate", type=int, default=2000, help="events per second to ingest")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each lag run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    schema = f"bench_projections_{os.getpid()}"
    url = f"{args.url}?schema={schema}"
    key = base64.b64encode(os.urandom(32)).decode()
    data_dir = tempfile.mkdtemp(prefix="bench-projections-")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, schema {schema}")
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    runtime = open_runtime(url, key, data_dir)
    try:
        target = DatabaseTarget.from_env(runtime.store.config.eventsourcing_env())
        started = time.perf_counter()
        write_log(runtime, args.messages, args.seed)
        print(
            f"wrote {runtime.store.max_position()} events for {args.messages} messages "
            f"in {time.perf_counter() - started:.0f} s"
        )
        bench_rebuild(runtime, target, args.runs)
        bench_lag(runtime, target, url, key, data_dir, args)
    finally:
        runtime.close()
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
