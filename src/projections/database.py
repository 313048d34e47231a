"""Connections of the read models to the ledger's database (SQLite or PostgreSQL).

The read models live in the database of the event log: on PostgreSQL in the
log's schema, on SQLite in the same file. Statements are written once with
``%s`` placeholders and translated per dialect, as the ledger's side tables do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool
from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError

from ledger.storage.tables import POSTGRES, SQLITE, Dialect

__all__ = [
    "DATABASE_ERRORS",
    "Connection",
    "ConnectionPool",
    "CopyData",
    "DatabaseTarget",
    "encode_copy",
]

DATABASE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    OperationalError,
    InterfaceError,
    PersistenceError,
)
"""Errors that mean the database is unreachable or busy: retry after a pause."""


@dataclass(frozen=True)
class DatabaseTarget:
    """Location of the read models: a SQLite file or a PostgreSQL schema.

    Built from the eventsourcing settings of the ledger's store
    (``StorageConfig.eventsourcing_env()``).
    """

    dialect: Dialect
    sqlite_path: str = ""
    conninfo: str = ""
    schema: str = ""
    timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> DatabaseTarget:
        """Return the target the ledger's eventsourcing settings describe.

        Raises:
            ValueError: The database is an in-memory SQLite database, which
                other connections cannot open.
        """
        if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
            path = env["SQLITE_DBNAME"]
            if ":memory:" in path or path.startswith("file::memory"):
                raise ValueError(
                    "read models need a database file that several connections can open; "
                    f"SQLite database {path!r} is in memory: use sqlite:///PATH"
                )
            return cls(SQLITE, sqlite_path=path, timeout_seconds=float(env["SQLITE_LOCK_TIMEOUT"]))
        conninfo = psycopg.conninfo.make_conninfo(
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            dbname=env["POSTGRES_DBNAME"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=env.get("POSTGRES_CONNECT_TIMEOUT", "5"),
            application_name="smsledger-projections",
        )
        return cls(POSTGRES, conninfo=conninfo, schema=env["POSTGRES_SCHEMA"])

    @property
    def is_postgres(self) -> bool:
        """True for PostgreSQL."""
        return self.dialect is POSTGRES

    def table(self, name: str) -> str:
        """Return a table name as statements write it (schema-qualified on PostgreSQL)."""
        return f'"{self.schema}".{name}' if self.is_postgres else name

    @property
    def events_table(self) -> str:
        """The ledger's events table, qualified."""
        return self.table("ledger_events") if self.is_postgres else "stored_events"

    @property
    def position_column(self) -> str:
        """The events table's log position column."""
        return "notification_id" if self.is_postgres else "rowid"

    def connect(self) -> Connection:
        """Open a new connection in autocommit mode."""
        if self.is_postgres:
            return Connection(self, psycopg.connect(self.conninfo, autocommit=True))
        raw = sqlite3.connect(
            self.sqlite_path,
            timeout=self.timeout_seconds,
            isolation_level=None,
            check_same_thread=False,
        )
        raw.execute("PRAGMA journal_mode=WAL")
        return Connection(self, raw)


@dataclass(frozen=True)
class CopyData:
    """Rows encoded in the text format of PostgreSQL's ``COPY ... FROM STDIN``."""

    payload: bytes
    count: int


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        # Backslash first, so that the escapes added after it stay single.
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def encode_copy(rows: Sequence[Sequence[Any]]) -> CopyData:
    """Encode rows of ints, strings and None for ``COPY ... FROM STDIN`` (text format)."""
    lines = ["\t".join([_copy_text(v) for v in row]) for row in rows]
    return CopyData(("\n".join(lines) + "\n").encode() if lines else b"", len(lines))


class ConnectionPool:
    """Connections for queries: pooled on PostgreSQL, opened per use on SQLite.

    Args:
        target: The database.
        max_size: Most PostgreSQL connections open at once.
    """

    def __init__(self, target: DatabaseTarget, max_size: int = 4) -> None:
        self.target = target
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[tuple[Any, ...]]] | None = None
        if target.is_postgres:
            self._pool = psycopg_pool.ConnectionPool(
                target.conninfo,
                min_size=1,
                max_size=max_size,
                kwargs={"autocommit": True},
                open=False,
                name="smsledger-read-models",
            )

    def open(self) -> None:
        """Open the pool without waiting for its first connection."""
        if self._pool is not None:
            self._pool.open(wait=False)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Lend a connection for the block."""
        if self._pool is None:
            conn = self.target.connect()
            try:
                yield conn
            finally:
                conn.close()
            return
        with self._pool.connection(timeout=self.target.timeout_seconds) as raw:
            yield Connection(self.target, raw)

    def close(self) -> None:
        """Close every pooled connection."""
        if self._pool is not None:
            self._pool.close()


class Connection:
    """One database connection with dialect-neutral helpers.

    Outside :meth:`transaction` every statement commits on its own.
    """

    def __init__(self, target: DatabaseTarget, raw: Any) -> None:
        self.target = target
        self.raw = raw
        self._sql = target.dialect.sql
        self._stages: set[str] = set()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """Execute one statement and return its cursor."""
        return self.raw.execute(self._sql(statement), params)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute one statement for each parameter row."""
        if not rows:
            return
        if self.target.is_postgres:
            with self.raw.cursor() as cursor:
                cursor.executemany(statement, rows)
        else:
            self.raw.executemany(self._sql(statement), rows)

    def upsert(
        self,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]] | CopyData,
        conflict: str,
    ) -> None:
        """Insert rows, resolving key conflicts with ``conflict``.

        Must run inside :meth:`transaction`.

        Args:
            table: Qualified table name; ``conflict`` may name it ``cur``.
            columns: ``(name, SQL type)`` of each value in a row.
            rows: The rows (no two with the same key), or them encoded with
                :func:`encode_copy` (PostgreSQL only).
            conflict: The ``ON CONFLICT ...`` clause.
        """
        count = rows.count if isinstance(rows, CopyData) else len(rows)
        if count == 0:
            return
        names = ", ".join(name for name, _ in columns)
        if self.target.is_postgres:
            data = rows if isinstance(rows, CopyData) else encode_copy(rows)
            self._copy_upsert(table, names, data, conflict)
            return
        if isinstance(rows, CopyData):
            raise TypeError("COPY data is for PostgreSQL; give SQLite the rows")
        marks = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO {table} AS cur ({names}) VALUES ({marks}) {conflict}"
        self.raw.executemany(statement, rows)

    def _copy_upsert(self, table: str, names: str, data: CopyData, conflict: str) -> None:
        # COPY into a session-local staging table, then one INSERT ... SELECT:
        # several times faster than any form of multi-row INSERT with psycopg.
        if self.raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            raise RuntimeError("upsert on PostgreSQL must run inside transaction()")
        stage = "rm_stage_" + table.rsplit(".", 1)[-1]
        if stage not in self._stages:
            self.raw.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS"
            )
            self._stages.add(stage)
        with self.raw.cursor() as cursor:
            with cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
                copy.write(data.payload)
            cursor.execute(
                f"INSERT INTO {table} AS cur ({names}) SELECT {names} FROM {stage} {conflict}"
            )
            cursor.execute(f"DELETE FROM {stage}")

    def fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute a query and return every row as a tuple."""
        return list(self.execute(statement, params).fetchall())

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Execute a query and return its first row, or None."""
        row = self.execute(statement, params).fetchone()
        return None if row is None else tuple(row)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Run the block in one transaction that holds the write lock from its start.

        On SQLite the transaction begins IMMEDIATE, so it never fails halfway
        because another writer took the lock. On PostgreSQL the statements
        take their row locks themselves.
        """
        if self.target.is_postgres:
            with self.raw.transaction():
                yield self
            return
        self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    def close(self) -> None:
        """Close the connection; errors of an already broken connection are ignored."""
        with suppress(psycopg.Error, sqlite3.Error):
            self.raw.close()
