"""The read-model interface, and the delta writes the read models share."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from projections.database import Connection, CopyData, DatabaseTarget, encode_copy
from projections.fold import MessageFold
from projections.tables import SHADOW_SUFFIX, TableSpec

__all__ = [
    "Change",
    "Delete",
    "Projection",
    "StagedWrites",
    "Upsert",
    "delta_writes",
    "fold_upsert",
]


@dataclass(frozen=True)
class Change:
    """A message that a batch of events changed.

    Attributes:
        fold: The message after the batch.
        fold_json: ``fold`` serialized.
        before: What the projection's ``contribution`` returned for the
            message before the batch; None for a message new in the batch.
    """

    fold: MessageFold
    fold_json: str
    before: Any


@dataclass
class Upsert:
    """Rows to insert, with the clause that resolves key conflicts.

    Attributes:
        table: Qualified table name; ``conflict`` may name it ``cur``.
        columns: ``(name, SQL type)`` of each value in a row.
        rows: The rows (no two with the same key), or them already encoded for COPY.
        conflict: The ``ON CONFLICT ...`` clause.
    """

    table: str
    columns: tuple[tuple[str, str], ...]
    rows: Sequence[Sequence[Any]] | CopyData
    conflict: str


@dataclass(frozen=True)
class Delete:
    """One DELETE statement run for each parameter row."""

    statement: str
    rows: list[tuple[Any, ...]]


@dataclass
class StagedWrites:
    """The writes of one projection for one batch, computed before any lock is taken."""

    operations: list[Upsert | Delete]

    def encode(self) -> None:
        """Encode every upsert's rows for PostgreSQL's COPY ahead of the transaction."""
        for operation in self.operations:
            if isinstance(operation, Upsert) and not isinstance(operation.rows, CopyData):
                operation.rows = encode_copy(operation.rows)

    def write(self, conn: Connection) -> None:
        """Execute the writes inside the caller's transaction."""
        for operation in self.operations:
            if isinstance(operation, Upsert):
                conn.upsert(operation.table, operation.columns, operation.rows, operation.conflict)
            else:
                conn.executemany(operation.statement, operation.rows)


class Projection(abc.ABC):
    """A read model: its tables and how a batch of changed messages updates them.

    Args:
        target: The database.
        shadow: Use the rebuild's shadow tables and position instead of the live ones.
    """

    name: ClassVar[str]
    specs: ClassVar[tuple[TableSpec, ...]]
    fold_spec: ClassVar[TableSpec]
    """The table that stores each message's fold in a ``fold`` column."""

    def __init__(self, target: DatabaseTarget, *, shadow: bool = False) -> None:
        self.target = target
        self.shadow = shadow
        self.suffix = SHADOW_SUFFIX if shadow else ""
        self.position_name = f"{self.name}{'@rebuild' if shadow else ''}"

    def table(self, spec: TableSpec) -> str:
        """Return the qualified name of one of this projection's tables."""
        return self.target.table(spec.base + self.suffix)

    def load_folds(self, conn: Connection, aggregate_ids: Sequence[str]) -> dict[str, str]:
        """Return the stored fold JSON of each named message that has one."""
        found: dict[str, str] = {}
        table = self.table(self.fold_spec)
        for start in range(0, len(aggregate_ids), 500):
            chunk = aggregate_ids[start : start + 500]
            condition, params = self.target.dialect.in_list("aggregate_id", chunk)
            rows = conn.fetchall(
                f"SELECT aggregate_id, fold FROM {table} WHERE {condition}", params
            )
            found.update((str(r[0]), str(r[1])) for r in rows)
        return found

    needs_contribution: ClassVar[bool] = True
    """Whether ``stage`` needs each changed message's contribution from before the batch."""

    def contribution(self, fold: MessageFold) -> Any:
        """Return what the message adds to this read model now (None: nothing to undo)."""
        return None

    @abc.abstractmethod
    def stage(self, changes: Sequence[Change]) -> StagedWrites:
        """Compute the writes that bring the tables from the ``before`` state of
        each change to its fold.
        """


def delta_writes(
    table: str,
    spec: TableSpec,
    value_columns: Sequence[str],
    deltas: Mapping[tuple[Any, ...], Sequence[int]],
) -> list[Upsert | Delete]:
    """Return the writes that add counter deltas to rows, creating missing rows and
    deleting rows that reach zero.

    The key columns are the table's primary key, in the order of the delta
    keys. Rows whose counters are all zero are deleted, so the table depends
    only on the log position, not on how events were split into batches.
    """
    rows = [(*key, *values) for key, values in deltas.items() if any(values)]
    if not rows:
        return []
    types = dict(spec.column_types)
    key_columns = [c for c in spec.column_names if c not in value_columns]
    columns = tuple((c, types[c]) for c in (*key_columns, *value_columns))
    updates = ", ".join(f"{c} = cur.{c} + excluded.{c}" for c in value_columns)
    conflict = f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}"
    operations: list[Upsert | Delete] = [Upsert(table, columns, rows, conflict)]
    shrunk = [key for key, values in deltas.items() if any(v < 0 for v in values)]
    if shrunk:
        where = " AND ".join(f"{c} = %s" for c in key_columns)
        zero = " AND ".join(f"{c} = 0" for c in value_columns)
        operations.append(Delete(f"DELETE FROM {table} WHERE {where} AND {zero}", shrunk))
    return operations


def fold_upsert(table: str, folds: Sequence[tuple[str, str]]) -> Upsert:
    """Return the write that inserts or replaces the fold of each ``(aggregate_id, fold JSON)``."""
    return Upsert(
        table,
        (("aggregate_id", "TEXT"), ("fold", "TEXT")),
        folds,
        "ON CONFLICT (aggregate_id) DO UPDATE SET fold = excluded.fold",
    )
