"""The relay's access to the ledger database: its position row and, on PostgreSQL, its lock.

On PostgreSQL only one relay per stream publishes: it holds a session-level
advisory lock (``pg_try_advisory_lock``) on a connection of its own and writes
its position row on that same connection. When that connection breaks, the
lock is gone with the session, so every error on it ends the relay's turn
(:class:`FencedError`). The embedded SQLite store serves a single node and
takes no lock; the epoch check still stops a second relay from moving the
position.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import hashlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from ledger.relay.tracking import TABLE_NAME, Checkpoint, Claim, PositionTable, RelayRecord
from ledger.storage.postgres import lock_schema_ddl
from ledger.storage.store import LedgerStore, StorageConfig
from ledger.storage.tables import POSTGRES, SQLITE, Cursor

__all__ = [
    "FencedError",
    "PostgresRelayDatabase",
    "RelayDatabase",
    "SqliteRelayDatabase",
    "open_relay_database",
    "postgres_conninfo",
    "read_relay_record",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class FencedError(Exception):
    """This relay may no longer publish: another relay raised the epoch, or the
    connection that held the lock failed. Stop publishing and stand by.
    """


def postgres_conninfo(
    config: StorageConfig, application_name: str = "smsledger-relay"
) -> tuple[str, str]:
    """Return a psycopg connection string and the schema of a PostgreSQL store.

    TCP keepalives are on so that a connection to a vanished server fails in
    seconds instead of hanging until the kernel gives up.
    """
    env = config.eventsourcing_env()
    conninfo = make_conninfo(
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        dbname=env["POSTGRES_DBNAME"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"] or None,
        connect_timeout=5,
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=3,
        application_name=application_name,
    )
    return conninfo, env["POSTGRES_SCHEMA"]


def _lock_key(schema: str, stream: str) -> int:
    """Return the advisory lock key of one stream's relay: a signed 64-bit hash."""
    digest = hashlib.sha256(f"smsledger-relay:{schema}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class RelayDatabase(abc.ABC):
    """Position row and turn-taking of the relay of one stream."""

    stream: str
    takes_lock: bool = False

    @abc.abstractmethod
    async def setup(self) -> None:
        """Create the position table if it is missing."""

    @abc.abstractmethod
    async def try_acquire(self) -> bool:
        """Try to become the relay that publishes; True on success."""

    @abc.abstractmethod
    async def claim(self, owner: str, lease_seconds: float) -> Claim:
        """Raise the epoch and return the row; call after :meth:`try_acquire`."""

    @abc.abstractmethod
    async def save_position(self, epoch: int, acked_position: int) -> None:
        """Store the acknowledged position.

        Raises:
            FencedError: The epoch moved on or the lock was lost.
        """

    @abc.abstractmethod
    async def save_checkpoints(self, epoch: int, checkpoints: tuple[Checkpoint, ...]) -> None:
        """Store the stream check's checkpoints.

        Raises:
            FencedError: The epoch moved on or the lock was lost.
        """

    @abc.abstractmethod
    async def release(self) -> None:
        """Give up the turn (unlock); safe to call when not holding it."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the turn and close connections."""


class PostgresRelayDatabase(RelayDatabase):
    """Relay row and advisory lock on a dedicated PostgreSQL connection.

    The connection is used from one worker thread only, so its statements
    never interleave.
    """

    takes_lock = True

    def __init__(self, conninfo: str, schema: str, stream: str) -> None:
        self.stream = stream
        self._conninfo = conninfo
        self._schema = schema
        self._key = _lock_key(schema, stream)
        self._table = PositionTable(POSTGRES, f'"{schema}".{TABLE_NAME}')
        self._conn: psycopg.Connection[Any] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="relay-lock"
        )

    async def _call(self, function: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                logger.debug("closing the relay lock connection failed", exc_info=True)
            self._conn = None

    def _execute(self, work: Callable[[Cursor], T]) -> T:
        try:
            with self._connection().cursor() as curs:
                return work(cast(Cursor, curs))
        except psycopg.Error as error:
            # The lock lives and dies with this session.
            self._drop_connection()
            raise FencedError(f"relay lock connection failed: {error}") from error

    async def setup(self) -> None:
        """Create the position table if it is missing."""

        def create(curs: Cursor) -> None:
            # The connection is in autocommit mode: the transaction holds the
            # lock that serializes table creation with other starting processes.
            raw = cast(psycopg.Cursor[Any], curs)
            with raw.connection.transaction():
                lock_schema_ddl(raw, self._schema)
                self._table.create(curs)

        await self._call(lambda: self._execute(create))

    async def try_acquire(self) -> bool:
        """Try to take the advisory lock of this stream's relay."""

        def attempt(curs: Cursor) -> bool:
            curs.execute("SELECT pg_try_advisory_lock(%s) AS locked", (self._key,))
            return bool(curs.fetchall()[0]["locked"])

        try:
            return await self._call(lambda: self._execute(attempt))
        except FencedError as error:
            logger.debug("cannot try the relay lock: %s", error)
            return False

    async def claim(self, owner: str, lease_seconds: float) -> Claim:
        """Raise the epoch on the lock connection and return the row."""
        return await self._call(
            lambda: self._execute(
                lambda curs: self._table.claim(curs, self.stream, owner, lease_seconds)
            )
        )

    async def save_position(self, epoch: int, acked_position: int) -> None:
        """Store the acknowledged position on the lock connection."""
        saved = await self._call(
            lambda: self._execute(
                lambda curs: self._table.save_position(curs, self.stream, epoch, acked_position)
            )
        )
        if not saved:
            raise FencedError(
                f"epoch {epoch} of stream {self.stream} was superseded: another relay took over"
            )

    async def save_checkpoints(self, epoch: int, checkpoints: tuple[Checkpoint, ...]) -> None:
        """Store the checkpoints on the lock connection."""
        saved = await self._call(
            lambda: self._execute(
                lambda curs: self._table.save_checkpoints(curs, self.stream, epoch, checkpoints)
            )
        )
        if not saved:
            raise FencedError(
                f"epoch {epoch} of stream {self.stream} was superseded: another relay took over"
            )

    async def release(self) -> None:
        """Unlock and close the lock connection.

        Closing alone releases the lock too, but only once the server notices
        the session ended; unlocking first lets a standby take over at once.
        """

        def unlock_and_drop() -> None:
            if self._conn is not None and not self._conn.closed:
                try:
                    self._conn.execute("SELECT pg_advisory_unlock_all()")
                except psycopg.Error:
                    logger.debug("unlocking the relay lock failed", exc_info=True)
            self._drop_connection()

        await self._call(unlock_and_drop)

    async def close(self) -> None:
        """Release the lock and stop the worker thread."""
        await self.release()
        self._executor.shutdown(wait=False)


class SqliteRelayDatabase(RelayDatabase):
    """Relay row in the embedded SQLite file, written through the store's connections."""

    def __init__(self, store: LedgerStore, stream: str) -> None:
        self.stream = stream
        self._datastore: Any = cast(Any, store.recorder).datastore
        self._table = PositionTable(SQLITE, TABLE_NAME)

    async def _write(self, work: Callable[[Cursor], T]) -> T:
        def run() -> T:
            with self._datastore.transaction(commit=True) as curs:
                return work(curs)

        return await asyncio.to_thread(run)

    async def setup(self) -> None:
        """Create the position table if it is missing."""
        await self._write(self._table.create)

    async def try_acquire(self) -> bool:
        """Return True: a single node needs no lock."""
        return True

    async def claim(self, owner: str, lease_seconds: float) -> Claim:
        """Raise the epoch and return the row (no lease wait on a single node)."""
        claim = await self._write(lambda curs: self._table.claim(curs, self.stream, owner, 0.0))
        return Claim(claim.record, 0.0)

    async def save_position(self, epoch: int, acked_position: int) -> None:
        """Store the acknowledged position."""
        saved = await self._write(
            lambda curs: self._table.save_position(curs, self.stream, epoch, acked_position)
        )
        if not saved:
            raise FencedError(
                f"epoch {epoch} of stream {self.stream} was superseded: another relay took over"
            )

    async def save_checkpoints(self, epoch: int, checkpoints: tuple[Checkpoint, ...]) -> None:
        """Store the checkpoints."""
        saved = await self._write(
            lambda curs: self._table.save_checkpoints(curs, self.stream, epoch, checkpoints)
        )
        if not saved:
            raise FencedError(
                f"epoch {epoch} of stream {self.stream} was superseded: another relay took over"
            )

    async def release(self) -> None:
        """Do nothing: no lock is held."""

    async def close(self) -> None:
        """Do nothing: the store owns the connections."""


def open_relay_database(store: LedgerStore, stream: str) -> RelayDatabase:
    """Return the relay database adapter for the store's backend."""
    if store.is_postgres:
        conninfo, schema = postgres_conninfo(store.config)
        return PostgresRelayDatabase(conninfo, schema, stream)
    return SqliteRelayDatabase(store, stream)


def read_relay_record(store: LedgerStore, stream: str) -> RelayRecord | None:
    """Return the stored relay row of ``stream``; None when no relay has run."""
    datastore: Any = cast(Any, store.recorder).datastore
    if store.is_postgres:
        _, schema = postgres_conninfo(store.config)
        table = PositionTable(POSTGRES, f'"{schema}".{TABLE_NAME}')
    else:
        table = PositionTable(SQLITE, TABLE_NAME)
    with datastore.transaction(commit=False) as curs:
        if not table.exists(curs):
            return None
        return table.read(curs, stream)
