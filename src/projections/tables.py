"""Tables of the read models: their columns, keys and indexes, and their DDL.

Every projection owns a set of tables. Its live tables have the base names
(``rm_messages``...); a rebuild writes shadow tables with a ``_rebuild`` suffix
and renames them over the live ones when done. Index names carry a random
token, because a renamed table keeps the names of its indexes and index names
must be unique in a schema (PostgreSQL) or a database file (SQLite).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from projections.counting import PERF_COUNTERS
from projections.database import Connection

__all__ = [
    "POSITIONS",
    "SHADOW_SUFFIX",
    "TableSpec",
    "create_positions",
    "create_tables",
    "drop_tables",
    "existing_tables",
]

SHADOW_SUFFIX = "_rebuild"
POSITIONS = "rm_positions"


@dataclass(frozen=True)
class TableSpec:
    """One table of a read model.

    Attributes:
        base: Table name without suffix or schema, such as ``rm_messages``.
        columns: Column definitions, in order.
        primary_key: Primary key columns.
        indexes: Column lists of the secondary indexes.
    """

    base: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of the columns, in order."""
        return tuple(c.split()[0] for c in self.columns)

    @property
    def column_types(self) -> tuple[tuple[str, str], ...]:
        """``(name, SQL type)`` of each column, in order."""
        return tuple((c.split()[0], c.split()[1]) for c in self.columns)


MESSAGES = TableSpec(
    "rm_messages",
    (
        "aggregate_id TEXT NOT NULL",
        "tenant TEXT NOT NULL",
        "message_id TEXT NOT NULL",
        "status TEXT NOT NULL",
        "final INTEGER NOT NULL",
        "permanent INTEGER",
        "error_code TEXT",
        "error_table TEXT",
        "error_class TEXT",
        "carrier TEXT NOT NULL",
        "carriers TEXT NOT NULL",
        "country TEXT NOT NULL",
        "attempts INTEGER NOT NULL",
        "segments INTEGER NOT NULL",
        "conflict INTEGER NOT NULL",
        "expiry_inferred INTEGER NOT NULL",
        "submitted_at BIGINT NOT NULL",
        "accepted_at BIGINT",
        "delivered_at BIGINT",
        "final_at BIGINT",
        "updated_at BIGINT NOT NULL",
        "version BIGINT NOT NULL",
        "fold TEXT NOT NULL",
    ),
    ("aggregate_id",),
    (
        ("tenant", "submitted_at", "aggregate_id"),
        ("tenant", "status", "submitted_at", "aggregate_id"),
        ("tenant", "carrier", "submitted_at", "aggregate_id"),
    ),
)

PERF_FOLDS = TableSpec(
    "rm_perf_folds", ("aggregate_id TEXT NOT NULL", "fold TEXT NOT NULL"), ("aggregate_id",)
)
CARRIER_HOURLY = TableSpec(
    "rm_carrier_hourly",
    (
        "tenant TEXT NOT NULL",
        "carrier TEXT NOT NULL",
        "country TEXT NOT NULL",
        "hour BIGINT NOT NULL",
        *(f"{name} BIGINT NOT NULL" for name in PERF_COUNTERS),
    ),
    ("tenant", "hour", "carrier", "country"),
)
FAILURE_CAUSES = TableSpec(
    "rm_failure_causes",
    (
        "tenant TEXT NOT NULL",
        "carrier TEXT NOT NULL",
        "country TEXT NOT NULL",
        "hour BIGINT NOT NULL",
        "status TEXT NOT NULL",
        "error_code TEXT NOT NULL",
        "permanent INTEGER NOT NULL",
        "count BIGINT NOT NULL",
    ),
    ("tenant", "hour", "carrier", "country", "status", "error_code", "permanent"),
)
LATENCY_FOLDS = TableSpec(
    "rm_latency_folds", ("aggregate_id TEXT NOT NULL", "fold TEXT NOT NULL"), ("aggregate_id",)
)
LATENCY_BUCKETS = TableSpec(
    "rm_latency_buckets",
    (
        "tenant TEXT NOT NULL",
        "carrier TEXT NOT NULL",
        "country TEXT NOT NULL",
        "hour BIGINT NOT NULL",
        "metric TEXT NOT NULL",
        "bucket INTEGER NOT NULL",
        "count BIGINT NOT NULL",
    ),
    ("tenant", "hour", "carrier", "country", "metric", "bucket"),
)


def create_positions(conn: Connection) -> None:
    """Create the table of projection positions if it is missing.

    ``generation`` changes whenever a projection's tables are replaced, so a
    projector that loaded the old tables fails its next position update.
    """
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {conn.target.table(POSITIONS)} ("
        "name TEXT PRIMARY KEY, position BIGINT NOT NULL, generation BIGINT NOT NULL, "
        "updated_at BIGINT NOT NULL)"
    )


def existing_tables(conn: Connection) -> set[str]:
    """Return the names of the tables in the read models' schema or file."""
    if conn.target.is_postgres:
        rows = conn.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (conn.target.schema,),
        )
    else:
        rows = conn.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(r[0]) for r in rows}


def create_tables(conn: Connection, specs: tuple[TableSpec, ...], suffix: str = "") -> None:
    """Create each table of ``specs`` (with ``suffix``) and its indexes, unless it exists.

    Run inside a transaction, so that a table never exists without its indexes.
    """
    present = existing_tables(conn)
    for spec in specs:
        name = spec.base + suffix
        if name in present:
            continue
        columns = ", ".join(spec.columns)
        key = ", ".join(spec.primary_key)
        conn.execute(f"CREATE TABLE {conn.target.table(name)} ({columns}, PRIMARY KEY ({key}))")
        for number, index in enumerate(spec.indexes, 1):
            index_name = f"{spec.base}_{number}_{secrets.token_hex(4)}_idx"
            conn.execute(
                f"CREATE INDEX {index_name} ON {conn.target.table(name)} ({', '.join(index)})"
            )


def drop_tables(conn: Connection, specs: tuple[TableSpec, ...], suffix: str = "") -> None:
    """Drop each table of ``specs`` (with ``suffix``) if it exists."""
    for spec in specs:
        conn.execute(f"DROP TABLE IF EXISTS {conn.target.table(spec.base + suffix)}")
