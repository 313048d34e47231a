"""Keeping the read models up to date: catch up, follow the log, restart on failure.

:class:`ProjectionWorker` runs the projector on a worker thread. It catches up
with the log, then waits for the next event. On PostgreSQL it waits on the
``LISTEN`` channel that the ledger ``NOTIFY``s on every insert, and also
polls, so that a lost notification only delays. On SQLite, which cannot
``LISTEN``, it polls. Any failure, such as a database restart or a killed
``LISTEN`` connection, ends the run. The worker then waits with exponential
backoff and starts a fresh projector, which resumes from the positions stored
with the rows, so nothing is skipped or applied twice.

On PostgreSQL only one worker per schema projects at a time: the one holding
a session advisory lock on its ``LISTEN`` connection. Others stand by and take
over when that connection ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg

from ledger.storage.store import LedgerStore
from projections.database import DatabaseTarget
from projections.runner import BatchResult, Projector, build_projections

__all__ = ["ProjectionWorker", "WorkerOptions"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

LEDGER_CHANNEL = "ledger_events"
"""Channel the ledger notifies on each insert: the unqualified events table name."""


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs.

    Attributes:
        batch_size: Maximum number of events per transaction.
        poll_interval_seconds: Maximum wait between reads of the log; with
            LISTEN a notification usually ends the wait earlier.
        listen: Wait for notifications (PostgreSQL only).
        exclusive: Take the PostgreSQL advisory lock so that one worker per
            schema projects at a time.
        backoff_initial_seconds: First wait after a failure.
        backoff_max_seconds: Maximum wait after repeated failures.
    """

    batch_size: int = 1000
    poll_interval_seconds: float = 1.0
    listen: bool = True
    exclusive: bool = True
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0


class ProjectionWorker:
    """Runs every projection until cancelled, restarting after failures.

    Args:
        store: The ledger's store.
        target: The database of the read models.
        options: How to run.
        on_batch: Called on the worker thread after each committed batch, for
            metrics.
    """

    def __init__(
        self,
        store: LedgerStore,
        target: DatabaseTarget,
        options: WorkerOptions | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self.options = options or WorkerOptions()
        self.on_batch = on_batch
        self.restarts = 0
        self.active = False
        self.position = 0
        self.last_lag_seconds = 0.0
        self.listener_pid: int | None = None
        """Backend process id of the current LISTEN connection (PostgreSQL)."""
        self._stop = threading.Event()

    def lag(self) -> int:
        """Return how many log positions the read models are behind the log's end.

        Reads the log's end from the database; call it from a thread.
        """
        return max(self.store.max_position() - self.position, 0)

    def _on_batch(self, result: BatchResult) -> None:
        self.position = result.position
        if result.last_recorded_at is not None:
            self.last_lag_seconds = max(time.time() - result.last_recorded_at.timestamp(), 0.0)
        if self.on_batch is not None:
            self.on_batch(result)

    async def run(self) -> None:
        """Project until cancelled; a failed run is retried after a backoff."""
        options = self.options
        backoff = options.backoff_initial_seconds
        while True:
            started = time.monotonic()
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.restarts += 1
                if time.monotonic() - started > 60:
                    # The run had been healthy for a while: restart quickly.
                    backoff = options.backoff_initial_seconds
                delay = backoff * random.uniform(0.8, 1.2)
                logger.warning(
                    "projections stopped (%s: %s); restarting in %.1f s",
                    type(error).__name__,
                    error,
                    delay,
                    extra={"restarts": self.restarts, "position": self.position},
                )
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, options.backoff_max_seconds)
            finally:
                self.active = False

    async def _run_once(self) -> None:
        options = self.options
        projector = Projector(
            self.store,
            self.target,
            build_projections(self.target),
            batch_size=options.batch_size,
            on_batch=self._on_batch,
        )
        listener: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        try:
            if self.target.is_postgres and (options.listen or options.exclusive):
                listener = await psycopg.AsyncConnection.connect(
                    self.target.conninfo, autocommit=True
                )
                self.listener_pid = listener.info.backend_pid
                if options.exclusive:
                    await self._take_lock(listener)
                if options.listen:
                    await listener.execute(f'LISTEN "{LEDGER_CHANNEL}"')
            await self._in_thread(projector.open)
            self.position = projector.position
            self.active = True
            logger.info("projections running", extra={"position": self.position})
            while True:
                await self._in_thread(projector.catch_up, None, None, self._stop.is_set)
                self.position = projector.position
                await self._wait(listener)
        finally:
            self.active = False
            await self._in_thread(projector.close)
            if listener is not None:
                await listener.close()

    async def _take_lock(self, listener: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        """Wait until this worker holds the schema's projection lock."""
        key = f"smsledger-projections:{self.target.schema}"
        waiting = False
        while True:
            cursor = await listener.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                if waiting:
                    logger.info("projection lock taken; this worker now projects")
                return
            if not waiting:
                logger.info("projection lock is held by another worker; waiting for it")
                waiting = True
            await asyncio.sleep(self.options.poll_interval_seconds * 5)

    async def _wait(self, listener: psycopg.AsyncConnection[tuple[object, ...]] | None) -> None:
        """Return after a notification or the poll interval, whichever is first."""
        timeout = self.options.poll_interval_seconds
        if listener is None or not self.options.listen:
            await asyncio.sleep(timeout)
            return
        async for _ in listener.notifies(timeout=timeout, stop_after=1):
            break

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on a thread; on cancellation, stop it and let it finish
        before the caller closes the connections it uses.
        """
        task = asyncio.ensure_future(asyncio.to_thread(function, *args))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._stop.set()
            await asyncio.wait({task})
            raise
