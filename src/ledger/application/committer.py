"""Group commit: commands that arrive together share one transaction.

Callers on the event loop hand their commands to :meth:`GroupCommitter.execute`
and wait. One worker takes everything queued so far (up to ``max_batch``
commands), applies it in a worker thread with :meth:`Ledger.execute`, and
answers every caller only after the transaction holding its events committed.
While one batch commits the next one gathers, so batches grow with load and a
lone command waits for no timer.

Commands whose deadline has passed by the time the worker takes them fail with
:class:`DeadlineExceededError` and are never applied. The queue is bounded:
when it is full, callers get :class:`ResourceExhaustedError` at once instead of
the process growing without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.application.commands import Command
from ledger.application.ledger import Ledger, Outcome
from ledger.errors import (
    DeadlineExceededError,
    LedgerError,
    ResourceExhaustedError,
    UnavailableError,
)

__all__ = ["AroundBatch", "BatchStats", "GroupCommitter"]

logger = logging.getLogger(__name__)

AroundBatch = Callable[
    [Callable[[Sequence[Command]], list[Outcome]], Sequence[Command]], list[Outcome]
]
"""Wraps the application of one batch: receives the function that applies
commands and the batch's commands, and returns that function's outcomes."""


@dataclass
class BatchStats:
    """Counters of the committer, for metrics."""

    batches: int = 0
    commands: int = 0
    expired: int = 0
    rejected: int = 0


@dataclass
class _Pending:
    commands: Sequence[Command]
    deadline: float | None
    future: asyncio.Future[list[Outcome]]


class GroupCommitter:
    """Gathers concurrent commands into shared transactions.

    Args:
        ledger: Applies batches.
        max_batch: Most commands in one transaction.
        max_queued: Most commands waiting; beyond it callers are rejected.
        on_batch: Called with the size and duration (seconds) of each batch.
        trace_context: Returns the caller's W3C ``traceparent``; called on the
            caller's task, it is stamped on commands that carry none.
        around_batch: Wraps the application of each batch on the worker
            thread (for a span and outcome counts).
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        max_batch: int = 1000,
        max_queued: int = 50_000,
        on_batch: Callable[[int, float], None] | None = None,
        trace_context: Callable[[], str | None] | None = None,
        around_batch: AroundBatch | None = None,
    ) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.on_batch = on_batch
        self.trace_context = trace_context
        self.around_batch = around_batch
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._queued = 0
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Finish the queued commands, then stop the worker."""
        if self._worker is None:
            return
        while self._queued:
            await asyncio.sleep(0.01)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    @property
    def queued(self) -> int:
        """Commands waiting for a batch."""
        return self._queued

    async def execute(
        self, commands: Sequence[Command], timeout: float | None = None
    ) -> list[Outcome]:
        """Apply commands in the next batch and return their outcomes in order.

        Args:
            commands: Commands of one caller; they stay together and in order.
            timeout: Seconds the caller can wait for its commands to be taken
                into a batch; None waits as long as it takes.

        Raises:
            ResourceExhaustedError: Too many commands are waiting already.
            UnavailableError: Storage failed; nothing was recorded.
        """
        if not commands:
            return []
        if self._queued + len(commands) > self.max_queued:
            self.stats.rejected += len(commands)
            raise ResourceExhaustedError(
                f"{self._queued} commands are waiting to be committed (limit "
                f"{self.max_queued}); retry shortly",
                retry_after_seconds=0.5,
            )
        if self.trace_context is not None:
            traceparent = self.trace_context()
            if traceparent is not None:
                commands = [
                    c if c.trace_context else dataclasses.replace(c, trace_context=traceparent)
                    for c in commands
                ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        pending = _Pending(commands, deadline, loop.create_future())
        self._queued += len(commands)
        self._queue.put_nowait(pending)
        return await pending.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            taken = [await self._queue.get()]
            size = len(taken[0].commands)
            while size < self.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                taken.append(item)
                size += len(item.commands)
            self._queued -= size

            now = loop.time()
            live = []
            for item in taken:
                if item.future.done():
                    continue
                if item.deadline is not None and item.deadline <= now:
                    self.stats.expired += len(item.commands)
                    item.future.set_exception(
                        DeadlineExceededError(
                            "the deadline passed while the command waited for storage; "
                            "nothing was recorded"
                        )
                    )
                    continue
                live.append(item)
            if not live:
                continue
            await self._commit(live)

    def _apply(self, commands: Sequence[Command]) -> list[Outcome]:
        if self.around_batch is None:
            return self.ledger.execute(commands)
        return self.around_batch(self.ledger.execute, commands)

    async def _commit(self, items: list[_Pending]) -> None:
        flat = [c for item in items for c in item.commands]
        started = time.perf_counter()
        try:
            outcomes = await asyncio.to_thread(self._apply, flat)
        except LedgerError as error:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        except Exception as error:
            logger.exception("batch of %d commands failed", len(flat))
            failure = UnavailableError(f"the batch could not be committed: {error}")
            for item in items:
                if not item.future.done():
                    item.future.set_exception(failure)
            return
        elapsed = time.perf_counter() - started
        self.stats.batches += 1
        self.stats.commands += len(flat)
        if self.on_batch is not None:
            self.on_batch(len(flat), elapsed)
        offset = 0
        for item in items:
            part = outcomes[offset : offset + len(item.commands)]
            offset += len(item.commands)
            if not item.future.done():
                item.future.set_result(part)
