"""PostgreSQL recorder of the ledger: the eventsourcing recorder plus side tables."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger.storage.records import SideWrites
from ledger.storage.tables import POSTGRES, SideTables

__all__ = ["LedgerPostgresRecorder"]


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
        """Create the configured schema when it is missing, then the tables in it."""
        self._create_schema()
        super().create_table()

    def _create_schema(self) -> None:
        # Existence is checked first because CREATE SCHEMA IF NOT EXISTS fails
        # without the CREATE privilege on the database even when the schema
        # exists, and a role that was only given an existing schema lacks it.
        schema = self.datastore.schema
        with self.datastore.transaction(commit=True) as curs:
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
