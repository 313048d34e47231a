"""Waiting for new log entries: PostgreSQL notifications, or polling.

Every PostgreSQL transaction that appends events sends ``NOTIFY`` on a channel
named after the events table, so the relay listens on it and wakes as soon as
a write commits. The channel name carries no schema, so writes to other
schemas' ledgers wake the relay too; it then reads, finds nothing and waits
again. The poll interval bounds the wait when a notification is missed or the
listening connection is down. SQLite has no notifications and is polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

import psycopg
from psycopg import sql

from ledger.relay.database import postgres_conninfo
from ledger.storage.store import LedgerStore

__all__ = ["LogWaiter"]

logger = logging.getLogger(__name__)


class LogWaiter:
    """Wakes the relay when the log may have grown.

    Call :meth:`arm` before reading the log and :meth:`wait` after a read that
    found nothing new; a notification that arrives in between is not lost.
    """

    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening (PostgreSQL only)."""
        if self._store.is_postgres and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="relay-log-listener")

    async def _listen(self) -> None:
        conninfo, _ = postgres_conninfo(self._store.config, "smsledger-relay-listen")
        channel = cast(Any, self._store.recorder).channel_name
        failing = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    if failing:
                        logger.info("listening for log notifications again")
                        failing = False
                    # Entries may have been appended while not listening.
                    self._event.set()
                    async for _ in conn.notifies():
                        self._event.set()
            except psycopg.Error as error:
                if not failing:
                    logger.warning(
                        "cannot listen for log notifications; polling until it works again",
                        extra={"error": str(error)},
                    )
                    failing = True
                await asyncio.sleep(1.0)

    def arm(self) -> None:
        """Forget earlier wake-ups; call before reading the log."""
        self._event.clear()

    async def wait(self, timeout: float) -> None:
        """Return on a notification since :meth:`arm`, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)

    def wake(self) -> None:
        """Wake a waiting relay, for example when it is stopping."""
        self._event.set()

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
