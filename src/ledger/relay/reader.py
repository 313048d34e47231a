"""Reading the ledger's log and turning entries into messages to publish.

Decoding an event and building its protobuf costs about as much CPU as
publishing it. So by default a separate process does it (:class:`LogReader`
with ``encoder_processes=1``), and the relay's event loop only publishes and
tracks acknowledgements, on another core. The process opens its own connection
to the ledger database. With ``encoder_processes=0`` the work runs in a thread
of the relay's process instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

from ledger.relay.config import RelayConfig
from ledger.relay.decode import EventDecoder
from ledger.relay.envelope import PUBLISHED_TOPICS, OutboundEvent, encode_notification
from ledger.storage.store import LedgerStore, StorageConfig

__all__ = ["LogBatch", "LogReader"]

logger = logging.getLogger(__name__)

_PAGE = 5000
"""Log entries per query when listing positions for the stream check."""


class LogBatch(NamedTuple):
    """Encoded events of one read and the highest log position it covered.

    ``through`` also counts entries that are not published, so the next read
    starts after them.
    """

    events: list[OutboundEvent]
    through: int


class _Encoder:
    """Reads log entries and encodes the published ones."""

    def __init__(self, store: LedgerStore, prefix: str, source: str) -> None:
        self.store = store
        self.prefix = prefix
        self.source = source
        self.decoder = EventDecoder(store.app.mapper)

    def encode_range(self, after: int, limit: int) -> LogBatch:
        notifications = self.store.notifications(after + 1, limit)
        decode = self.decoder.decode
        events = []
        for notification in notifications:
            encoded = encode_notification(
                decode, notification, prefix=self.prefix, source=self.source
            )
            if encoded is not None:
                events.append(encoded)
        through = notifications[-1].id if notifications else after
        return LogBatch(events, through)

    def encode_positions(self, positions: Sequence[int]) -> list[OutboundEvent]:
        wanted = set(positions)
        events: list[OutboundEvent] = []
        # Read contiguous runs, so a few queries cover a sparse set.
        runs: list[tuple[int, int]] = []
        for position in sorted(wanted):
            if runs and position - runs[-1][1] <= 64:
                runs[-1] = (runs[-1][0], position)
            else:
                runs.append((position, position))
        for first, last in runs:
            after = first - 1
            while after < last:
                batch = self.encode_range(after, min(1000, last - after))
                events.extend(e for e in batch.events if e.position in wanted)
                if batch.through <= after:
                    break
                after = batch.through
        return events


# State of an encoder process; set by _start_worker in that process.
_worker: _Encoder | None = None


def _exit_with_parent(parent: int) -> None:
    # A relay killed with SIGKILL cannot stop its encoder process, and the
    # process would wait for work forever, so it watches its parent instead.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _start_worker(storage: StorageConfig, prefix: str, source: str, parent: int) -> None:
    global _worker
    # The parent's pid comes from the parent: it may have died while this
    # process was still starting.
    threading.Thread(
        target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True
    ).start()
    config = dataclasses.replace(storage, create_tables=False, pool_size=1, max_overflow=1)
    _worker = _Encoder(LedgerStore(config), prefix, source)


def _worker_encode_range(after: int, limit: int) -> LogBatch:
    assert _worker is not None, "encoder process was not initialised"
    return _worker.encode_range(after, limit)


def _worker_encode_positions(positions: Sequence[int]) -> list[OutboundEvent]:
    assert _worker is not None, "encoder process was not initialised"
    return _worker.encode_positions(positions)


class LogReader:
    """Reads the log for the relay, in a worker process or a worker thread.

    Args:
        store: The ledger store (used directly for small queries).
        config: The relay configuration.
    """

    def __init__(self, store: LedgerStore, config: RelayConfig) -> None:
        self.store = store
        self.config = config
        self._local = _Encoder(store, config.subject_prefix, config.event_source)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _process_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the parent runs threads (gRPC, psycopg pools)
            # that a forked child would inherit in an undefined state.
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(
                    self.store.config,
                    self.config.subject_prefix,
                    self.config.event_source,
                    os.getpid(),
                ),
            )
        return self._pool

    async def _in_process(self, function: object, *args: object) -> object:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._process_pool(), function, *args)  # type: ignore[arg-type]
        except concurrent.futures.process.BrokenProcessPool:
            logger.warning("encoder process died; starting a new one")
            self._shutdown_pool()
            return await loop.run_in_executor(self._process_pool(), function, *args)  # type: ignore[arg-type]

    async def read(self, after: int, limit: int) -> LogBatch:
        """Return the encoded events after position ``after`` (at most ``limit`` entries)."""
        if self.config.encoder_processes > 0:
            result = await self._in_process(_worker_encode_range, after, limit)
            assert isinstance(result, LogBatch)
            return result
        return await asyncio.to_thread(self._local.encode_range, after, limit)

    async def read_positions(self, positions: Sequence[int]) -> list[OutboundEvent]:
        """Return the encoded events at the given positions, in log order."""
        return await asyncio.to_thread(self._local.encode_positions, list(positions))

    async def log_positions(self, after: int, through: int) -> list[int]:
        """Return the publishable positions in ``(after, through]``, ascending."""
        return await asyncio.to_thread(self._log_positions, after, through)

    def _log_positions(self, after: int, through: int) -> list[int]:
        positions: list[int] = []
        topics = sorted(PUBLISHED_TOPICS)
        while after < through:
            page = self.store.recorder.select_notifications(
                after + 1, _PAGE, stop=through, topics=topics
            )
            if not page:
                break
            positions.extend(n.id for n in page)
            after = page[-1].id
        return positions

    async def max_position(self) -> int:
        """Return the highest position in the log."""
        return await asyncio.to_thread(self.store.max_position)

    def _shutdown_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def close(self) -> None:
        """Stop the encoder process."""
        self._shutdown_pool()
