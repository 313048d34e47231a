"""Building projectors and reading whole read-model tables in tests."""

from __future__ import annotations

from typing import Any

from ledger.runtime import Runtime
from projections.database import Connection, DatabaseTarget
from projections.runner import PROJECTIONS, Projector, build_projections
from projections.tables import SHADOW_SUFFIX


def target_of(runtime: Runtime) -> DatabaseTarget:
    return DatabaseTarget.from_env(runtime.store.config.eventsourcing_env())


def projector(runtime: Runtime, **options: Any) -> Projector:
    target = target_of(runtime)
    built = Projector(runtime.store, target, build_projections(target), **options)
    built.open()
    return built


def snapshot(conn: Connection, *, shadow: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every read-model table, sorted, by table base name."""
    suffix = SHADOW_SUFFIX if shadow else ""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for cls in PROJECTIONS.values():
        for spec in cls.specs:
            name = conn.target.table(spec.base + suffix)
            columns = ", ".join(spec.column_names)
            rows = conn.fetchall(f"SELECT {columns} FROM {name}")
            tables[spec.base] = sorted(tuple(r) for r in rows)
    return tables


def rows(
    conn: Connection, table: str, where: str = "", params: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    """Return rows of a live table as dicts."""
    cursor = conn.execute(f"SELECT * FROM {conn.target.table(table)} {where}", params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
