"""SQLite recorder of the ledger: the eventsourcing recorder plus side tables."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from ledger.storage.records import SideWrites
from ledger.storage.tables import SQLITE, SideTables

__all__ = ["LedgerSQLiteRecorder"]


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    """Application recorder that writes the side tables in the events' transaction."""

    def __init__(
        self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"
    ) -> None:
        self.side_tables = SideTables(SQLITE, "ledger_")
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        """Return the events table DDL followed by the side tables' DDL."""
        return [*super().construct_create_table_statements(), *self.side_tables.create_statements()]

    def _create_table(self, c: SQLiteCursor) -> None:
        super()._create_table(c)
        self.side_tables.add_columns(c)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events)
        side: SideWrites | None = kwargs.get("side")
        if side:
            self.side_tables.write(c, side)
        return ids

    def select_stored_events(
        self, originator_ids: Collection[uuid.UUID]
    ) -> list[tuple[StoredEvent, int]]:
        """Return the events of several messages with their log positions,
        ordered by message and version.
        """
        ids = [i.hex for i in originator_ids]
        rows: list[tuple[StoredEvent, int]] = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                c.execute(
                    "SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {self.events_table_name} WHERE originator_id IN ({marks}) "
                    "ORDER BY originator_id, originator_version",
                    chunk,
                )
                rows.extend(
                    (
                        StoredEvent(
                            originator_id=uuid.UUID(row["originator_id"]),
                            originator_version=row["originator_version"],
                            topic=row["topic"],
                            state=bytes(row["state"]),
                        ),
                        row["rowid"],
                    )
                    for row in c.fetchall()
                )
        return rows
