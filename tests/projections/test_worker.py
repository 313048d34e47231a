"""The projection worker: LISTEN/NOTIFY, restarts after failures, one active worker per schema."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ledger.application.results import CommandResult
from ledger.errors import UnavailableError
from ledger.runtime import Runtime, build_runtime
from projections.worker import ProjectionWorker, WorkerOptions
from tests.conftest import make_settings
from tests.projections.helpers import target_of
from tests.projections.traffic import BASE, submit
from tests.support.servers import require_or_skip, start_postgres


@pytest.fixture
def pg_runtime(postgres_schema_url: str, tmp_path: Path) -> Iterator[Runtime]:
    built = build_runtime(make_settings(postgres_schema_url, tmp_path))
    try:
        yield built
    finally:
        built.close()


def write(runtime: Runtime, prefix: str, count: int) -> None:
    commands = [submit(f"{prefix}{n}", "alpha", BASE) for n in range(count)]
    for outcome in runtime.ledger.execute(commands):
        assert isinstance(outcome, CommandResult), outcome


async def wait_for(worker: ProjectionWorker, position: int, seconds: float) -> float:
    """Wait until the worker has projected ``position``; return how long that took."""
    started = time.monotonic()
    while worker.position < position:
        if time.monotonic() - started > seconds:
            raise AssertionError(
                f"worker at {worker.position}, not {position}, after {seconds} s "
                f"(restarts {worker.restarts})"
            )
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_worker_follows_notifications(pg_runtime: Runtime) -> None:
    # A poll interval far beyond the wait proves that NOTIFY wakes the worker.
    options = WorkerOptions(poll_interval_seconds=60)
    worker = ProjectionWorker(pg_runtime.store, target_of(pg_runtime), options)
    task = asyncio.create_task(worker.run())
    try:
        await wait_for_active(worker)
        for round_ in range(3):
            await asyncio.to_thread(write, pg_runtime, f"n{round_}-", 5)
            await wait_for(worker, pg_runtime.store.max_position(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert worker.restarts == 0


async def wait_for_active(worker: ProjectionWorker, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not worker.active:
        assert time.monotonic() < deadline, "worker did not start"
        await asyncio.sleep(0.02)


async def test_worker_restarts_after_listen_backend_killed(
    pg_runtime: Runtime, postgres_url: str
) -> None:
    options = WorkerOptions(poll_interval_seconds=60, backoff_initial_seconds=0.1)
    worker = ProjectionWorker(pg_runtime.store, target_of(pg_runtime), options)
    task = asyncio.create_task(worker.run())
    try:
        await wait_for_active(worker)
        await asyncio.to_thread(write, pg_runtime, "before-", 3)
        await wait_for(worker, pg_runtime.store.max_position(), 10)
        killed = worker.listener_pid
        assert killed is not None
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (killed,))
        deadline = time.monotonic() + 20
        while worker.restarts == 0 or not worker.active:
            assert time.monotonic() < deadline, "worker did not restart"
            await asyncio.sleep(0.02)
        assert worker.listener_pid != killed
        await asyncio.to_thread(write, pg_runtime, "after-", 3)
        await wait_for(worker, pg_runtime.store.max_position(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_second_worker_stands_by_then_takes_over(pg_runtime: Runtime) -> None:
    options = WorkerOptions(poll_interval_seconds=0.2)
    target = target_of(pg_runtime)
    first = ProjectionWorker(pg_runtime.store, target, options)
    second = ProjectionWorker(pg_runtime.store, target, options)
    first_task = asyncio.create_task(first.run())
    await wait_for_active(first)
    second_task = asyncio.create_task(second.run())
    try:
        await asyncio.sleep(1.5)
        assert not second.active
        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        await wait_for_active(second, seconds=10)
        await asyncio.to_thread(write, pg_runtime, "takeover-", 4)
        await wait_for(second, pg_runtime.store.max_position(), 10)
    finally:
        for task in (first_task, second_task):
            task.cancel()
        await asyncio.gather(first_task, second_task, return_exceptions=True)


@pytest.mark.slow
async def test_worker_survives_database_restart(tmp_path: Path) -> None:
    try:
        server = start_postgres()
    except (RuntimeError, OSError) as error:
        require_or_skip(f"cannot start a throwaway PostgreSQL server: {error}")
        return
    try:
        runtime = build_runtime(make_settings(f"{server.url}?schema=public", tmp_path))
        options = WorkerOptions(poll_interval_seconds=0.5, backoff_initial_seconds=0.2)
        worker = ProjectionWorker(runtime.store, target_of(runtime), options)
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.to_thread(write, runtime, "a-", 10)
            await wait_for(worker, runtime.store.max_position(), 20)
            await asyncio.to_thread(server.stop, "fast")
            await asyncio.sleep(1)
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(write_with_retry, runtime, "b-", 10)
            await wait_for(worker, runtime.store.max_position(), 60)
            assert worker.restarts >= 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            runtime.close()
    finally:
        server.destroy()


def write_with_retry(runtime: Runtime, prefix: str, count: int) -> None:
    """Write after a restart: the ledger's pool may hand out a dead connection once."""
    deadline = time.monotonic() + 30
    while True:
        try:
            write(runtime, prefix, count)
            return
        except (AssertionError, UnavailableError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
