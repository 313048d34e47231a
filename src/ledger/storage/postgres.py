"""PostgreSQL recorder of the ledger: the eventsourcing recorder plus side tables."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.errors import DuplicateObject
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger.storage.records import SideWrites
from ledger.storage.tables import POSTGRES, SideTables

__all__ = ["LedgerPostgresRecorder", "lock_schema_ddl"]


def lock_schema_ddl(curs: Cursor[Any], schema: str) -> None:
    """Wait for the transaction-level lock that serializes table creation in ``schema``.

    IF NOT EXISTS only checks catalog entries committed before the statement
    started. So when two sessions create the same table, type, schema or
    function at once, one fails with "tuple concurrently updated" or a unique
    violation on a catalog index. Processes that hold this lock for their
    whole creating transaction find each other's committed tables. The lock
    ends with the transaction.
    """
    curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"smsledger-ddl:{schema}"])


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    """Application recorder that writes the side tables in the events' transaction.

    The side rows are written after the events table lock is taken, so that
    every writer takes locks in the same order (table lock, then rows) and
    writers on several nodes cannot deadlock on a request id row.
    """

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        base = events_table_name.removesuffix("_events")
        # One array per column: psycopg dumps these in binary, much faster than
        # the composite-type array eventsourcing sends.
        self.insert_events_by_columns = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=Identifier(datastore.schema), table=Identifier(events_table_name))
        self.side_tables = SideTables(POSTGRES, f'"{datastore.schema}".{base}_')
        for statement in self.side_tables.create_statements():
            self.sql_create_statements.append(SQL(statement).format())

    def create_table(self) -> None:
        """Create the configured schema when it is missing, then the tables in it.

        Everything is created in one transaction under :func:`lock_schema_ddl`,
        so processes that start at the same time on a new schema take turns
        instead of failing on each other's catalog rows.
        """
        with self.datastore.transaction(commit=True) as curs:
            lock_schema_ddl(curs, self.datastore.schema)
            self._create_schema(curs)
            for statement in self.sql_create_statements:
                if "CREATE TYPE" in statement.as_string():
                    # CREATE TYPE has no IF NOT EXISTS, so a savepoint keeps the
                    # transaction usable when the type exists.
                    with contextlib.suppress(DuplicateObject), curs.connection.transaction():
                        curs.execute(statement, prepare=False)
            self._create_table(curs)
        self.datastore.register_type_adapters()

    def _create_schema(self, curs: Cursor[DictRow]) -> None:
        # Existence is checked first because CREATE SCHEMA IF NOT EXISTS fails
        # without the CREATE privilege on the database even when the schema
        # exists, and a role that was only given an existing schema lacks it.
        schema = self.datastore.schema
        curs.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        if curs.fetchone() is None:
            curs.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        side: SideWrites | None = kwargs.get("side")
        if side and not stored_events:
            # No events means no table lock; the side rows are the whole write.
            self.side_tables.write(curs, side)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        side: SideWrites | None = kwargs.get("side")
        if side:
            self.side_tables.write(curs, side)
        self._notify_channel(curs)
        curs.execute(
            self.insert_events_by_columns,
            [
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ],
        )

    def select_stored_events(
        self, originator_ids: Collection[uuid.UUID]
    ) -> list[tuple[StoredEvent, int]]:
        """Return the events of several messages with their log positions,
        ordered by message and version.
        """
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state, notification_id "
            "FROM {schema}.{table} WHERE originator_id = ANY(%s) "
            "ORDER BY originator_id, originator_version"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, [list(originator_ids)], prepare=True)
            return [
                (
                    StoredEvent(
                        originator_id=row["originator_id"],
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    ),
                    row["notification_id"],
                )
                for row in curs.fetchall()
            ]
