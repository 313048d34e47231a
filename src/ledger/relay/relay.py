"""The outbox relay: follows the ledger's log and publishes it to JetStream.

Lifecycle of one relay process:

1. Connect to NATS (retrying with backoff) and create the position table.
2. Take the turn: on PostgreSQL wait for the advisory lock (standing by while
   another relay holds it), then raise the epoch and wait out what remains of
   the previous holder's lease.
3. Make sure the stream exists, compare it with the log and publish what it
   lacks, then publish the log from the acknowledged position on.
4. Beside publishing: write the acknowledged position (and a heartbeat) every
   ``commit_interval_seconds``, compare the stream with the log every
   ``check_interval_seconds``.
5. On a NATS failure go back to step 3 with backoff; on losing the turn go
   back to step 2 (PostgreSQL) or stop (SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import socket
import sqlite3
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from ledger.relay.check import CheckResult, check_by_acks, check_stream
from ledger.relay.config import RelayConfig
from ledger.relay.database import FencedError, open_relay_database
from ledger.relay.link import NatsLink
from ledger.relay.publisher import PublishCounters, Publisher
from ledger.relay.reader import LogReader
from ledger.relay.stream import ensure_stream
from ledger.relay.tracking import MAX_CHECKPOINTS, Checkpoint
from ledger.relay.waiter import LogWaiter
from ledger.storage.store import LedgerStore

__all__ = ["Relay", "RelaySnapshot", "RelayState"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_POSITION_EVERY = 1.0
"""Seconds between two reads of the log's highest position, for the lag."""


class RelayState(enum.Enum):
    """State of a relay."""

    STARTING = "starting"
    STANDBY = "standby"
    TAKING_OVER = "taking_over"
    RECOVERING = "recovering"
    PUBLISHING = "publishing"
    STOPPED = "stopped"


class _Recoverable(Exception):
    """A NATS-side step failed; retry it with backoff."""


@dataclass(frozen=True)
class RelaySnapshot:
    """The relay's progress at one moment.

    Attributes:
        state: What the relay is doing.
        epoch: The epoch it publishes under (0 before its first turn).
        acked_position: Every publishable entry at or below it is acknowledged.
        log_position: The log's highest position when last read.
        counters: Acknowledgements, duplicates and republished events so far.
    """

    state: RelayState
    epoch: int
    acked_position: int
    log_position: int
    counters: PublishCounters

    @property
    def lag(self) -> int:
        """Log entries not yet acknowledged by JetStream."""
        return max(0, self.log_position - self.acked_position)


class Relay:
    """Publishes the ledger's log to a JetStream stream, one relay at a time.

    Args:
        store: The ledger store to follow.
        config: Relay configuration.
        owner: Name recorded in the position row; defaults to ``host:pid``.
    """

    def __init__(
        self, store: LedgerStore, config: RelayConfig, *, owner: str | None = None
    ) -> None:
        self.store = store
        self.config = config
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.state = RelayState.STARTING
        self._db = open_relay_database(store, config.stream)
        self._reader = LogReader(store, config)
        self._waiter = LogWaiter(store)
        self._link = NatsLink(config.nats_servers, max_pending=config.max_in_flight)
        self._stopping = asyncio.Event()
        self._publisher: Publisher | None = None
        self._epoch = 0
        self._acked = 0
        self._log_position = 0
        self._checkpoints: tuple[Checkpoint, ...] = ()
        self._counters = PublishCounters()

    # ----------------------------------------------------------------- API

    def snapshot(self) -> RelaySnapshot:
        """Return the relay's current progress (for metrics and status)."""
        acked = self._publisher.window.acked_position if self._publisher else self._acked
        return RelaySnapshot(self.state, self._epoch, acked, self._log_position, self._counters)

    async def stop(self) -> None:
        """Ask :meth:`run` to finish; it commits the acknowledged position first."""
        self._stopping.set()
        self._waiter.wake()

    async def run(self) -> None:
        """Run until :meth:`stop` (or until fenced on SQLite)."""
        try:
            await self._waiter.start()
            if not await self._until_stopped(self._link.connect()):
                return
            self._link.on_disconnect(self._connection_lost)
            if not await self._until_stopped(self._setup_database()):
                return
            losses = 0
            while not self._stopping.is_set():
                if not await self._acquire():
                    return
                started = time.monotonic()
                try:
                    await self._lead()
                except FencedError as error:
                    await self._db.release()
                    if not self._db.takes_lock:
                        raise
                    # A turn that lasted a while was a healthy one: start over.
                    losses = 1 if time.monotonic() - started > 60 else losses + 1
                    level = logging.WARNING if losses == 1 else logging.DEBUG
                    logger.log(
                        level,
                        "relay lost its turn; it stopped publishing",
                        extra={
                            "stream": self.config.stream,
                            "epoch": self._epoch,
                            "error": str(error),
                            "losses": losses,
                        },
                    )
                    # Back off when the turn keeps failing, such as while the
                    # database rejects the relay's writes.
                    await self._sleep(min(0.5 * 2 ** (losses - 1), 30.0) * random.uniform(0.8, 1.2))
        finally:
            self.state = RelayState.STOPPED
            await self._close()

    # ------------------------------------------------------------ helpers

    def _set_state(self, state: RelayState) -> None:
        if state is not self.state:
            logger.info(
                "relay %s",
                state.value,
                extra={
                    "stream": self.config.stream,
                    "epoch": self._epoch,
                    "acked_position": self.snapshot().acked_position,
                },
            )
            self.state = state

    async def _until_stopped(self, work: Awaitable[T]) -> bool:
        """Run ``work`` unless the relay is stopped first; True when it finished."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return False
        task.result()
        return True

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _connection_lost(self) -> None:
        if self._publisher is not None:
            self._publisher.fail("NATS connection lost")

    async def _setup_database(self) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((FencedError, sqlite3.Error)),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            reraise=True,
        ):
            with attempt:
                await self._db.setup()

    async def _acquire(self) -> bool:
        """Wait for the turn to publish; False when stopped first."""
        while not self._stopping.is_set():
            if await self._db.try_acquire():
                return True
            self._set_state(RelayState.STANDBY)
            await self._sleep(max(self.config.lease_seconds / 4, 0.05))
        return False

    # ------------------------------------------------------------- leading

    async def _lead(self) -> None:
        # Take the turn: raise the epoch, then wait out the previous lease.
        claim = await self._db.claim(self.owner, self.config.lease_seconds)
        record = claim.record
        self._epoch = record.epoch
        self._acked = record.acked_position
        self._checkpoints = record.checkpoints
        self._set_state(RelayState.TAKING_OVER)
        if claim.wait_seconds > 0:
            logger.info(
                "waiting for the previous relay's lease to end",
                extra={"stream": self.config.stream, "seconds": round(claim.wait_seconds, 3)},
            )
            await self._sleep(claim.wait_seconds)

        publisher = Publisher(
            self._link,
            self._reader,
            self._waiter,
            self.config,
            epoch=record.epoch,
            acked_position=record.acked_position,
        )
        publisher.counters = self._counters
        self._publisher = publisher

        # Publishing, position writes and periodic checks run side by side;
        # the first to end (stop, or a lost turn) ends the others.
        tasks = [
            asyncio.create_task(self._publish(publisher), name="relay-publish"),
            asyncio.create_task(self._sync(publisher), name="relay-sync"),
            asyncio.create_task(self._check_periodically(publisher), name="relay-check"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, FencedError):
                    await task
            await self._finish(publisher)

    async def _finish(self, publisher: Publisher) -> None:
        """Let pending publishes finish, then store the final position."""
        if publisher.failure is None and self._link.connected.is_set():
            await publisher.drain(min(self.config.publish_timeout_seconds, 5.0))
        self._acked = publisher.window.acked_position
        publisher.fail("relay stopping")
        self._publisher = None
        with contextlib.suppress(FencedError, sqlite3.Error, TimeoutError):
            await asyncio.wait_for(self._db.save_position(self._epoch, self._acked), 5.0)

    async def _publish(self, publisher: Publisher) -> None:
        while not self._stopping.is_set():
            await self._recover(publisher)
            if self._stopping.is_set():
                return
            self._set_state(RelayState.PUBLISHING)
            await publisher.pump(self._stopping)

    async def _recover(self, publisher: Publisher) -> None:
        """Prepare publishing: connection, stream, check; retried with backoff."""
        if publisher.failure is not None:
            logger.warning(
                "publishing interrupted; resuming from the acknowledged position",
                extra={
                    "stream": self.config.stream,
                    "reason": publisher.failure,
                    "acked_position": publisher.window.acked_position,
                },
            )
        self._set_state(RelayState.RECOVERING)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_Recoverable),
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0),
        ):
            with attempt:
                publisher.reset()
                if self._stopping.is_set():
                    return
                await self._until_stopped(self._link.connected.wait())
                if self._stopping.is_set():
                    return
                try:
                    await ensure_stream(self._link.js, self.config)
                    result = await self._check(publisher)
                except (nats.errors.Error, OSError, TimeoutError) as error:
                    raise _Recoverable(str(error) or type(error).__name__) from error
                if result.missing:
                    publisher.request_repair(result.missing)
                if publisher.failure is not None:
                    raise _Recoverable(publisher.failure)

    async def _sync(self, publisher: Publisher) -> None:
        """Write the acknowledged position and heartbeat; enforce timeouts and the lease."""
        committed = -1
        last_write = time.monotonic()
        last_max = 0.0
        while True:
            await asyncio.sleep(self.config.commit_interval_seconds)
            publisher.check_timeout()
            now = time.monotonic()
            if now - last_max >= _MAX_POSITION_EVERY:
                with contextlib.suppress(Exception):
                    self._log_position = await self._reader.max_position()
                last_max = now
            acked = publisher.window.acked_position
            if acked == committed and now - last_write < self.config.lease_seconds / 4:
                continue
            started = time.monotonic()
            remaining = self.config.lease_seconds - (started - last_write)
            try:
                await asyncio.wait_for(
                    self._db.save_position(self._epoch, acked), max(remaining, 0.05)
                )
            except TimeoutError as error:
                if self._db.takes_lock:
                    raise FencedError(
                        "no position write succeeded within the "
                        f"{self.config.lease_seconds:g} s lease"
                    ) from error
                continue
            except sqlite3.Error as error:
                logger.warning("cannot store the relay position", extra={"error": str(error)})
                continue
            committed = acked
            # The lease runs from the start of the last successful write.
            last_write = started

    async def _check(self, publisher: Publisher) -> CheckResult:
        acked = publisher.window.acked_position
        base = self._checkpoints[-1] if self._checkpoints else Checkpoint()
        result: CheckResult | None = None
        if base.verified_position >= publisher.coverage_from:
            result = await check_by_acks(
                self._link.js,
                stream=self.config.stream,
                base=base,
                acks=publisher.acks,
                acked_position=acked,
                barrier=publisher.barrier,
            )
        if result is None:
            result = await check_stream(
                self._link.js,
                stream=self.config.stream,
                subjects=self.config.stream_subjects,
                checkpoints=self._checkpoints,
                acked_position=acked,
                log_positions=self._reader.log_positions,
            )
            publisher.raise_barrier(result.max_position_read)
        publisher.prune_acks(result.checkpoint.verified_position)
        latest = self._checkpoints[-1] if self._checkpoints else None
        if result.checkpoint != latest:
            self._checkpoints = (*self._checkpoints, result.checkpoint)[-MAX_CHECKPOINTS:]
            await self._db.save_checkpoints(self._epoch, self._checkpoints)
        if result.missing:
            logger.warning(
                "stream lacks events of the log; publishing them again",
                extra={
                    "stream": self.config.stream,
                    "missing": len(result.missing),
                    "first_position": result.missing[0],
                    "last_position": result.missing[-1],
                },
            )
        else:
            logger.debug(
                "stream matches the log",
                extra={
                    "stream": self.config.stream,
                    "verified_position": result.checkpoint.verified_position,
                    "messages_read": result.messages_read,
                },
            )
        return result

    async def _check_periodically(self, publisher: Publisher) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.config.check_interval_seconds)
            if self.state is not RelayState.PUBLISHING:
                continue
            try:
                result = await self._check(publisher)
            except (nats.errors.Error, OSError, TimeoutError) as error:
                if not failing:
                    logger.warning(
                        "stream check failed; trying again at the next interval",
                        extra={"stream": self.config.stream, "error": str(error)},
                    )
                failing = True
                continue
            failing = False
            if result.missing:
                publisher.request_repair(result.missing)

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self._link.close()
        await self._waiter.close()
        await self._reader.close()
        await self._db.close()
