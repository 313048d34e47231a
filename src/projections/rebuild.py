"""Rebuilding read models from the log into shadow tables, and swapping them in.

A rebuild projects the whole log into fresh ``*_rebuild`` tables with their
own positions, while ingestion and the live projector go on. Once it has
caught up, one transaction renames the shadow tables over the live ones and
gives the live position the shadow's position and a new generation. The live
projector's next position update then fails its generation check, so it
reloads and continues from the rebuilt tables' position.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from ledger.storage.store import LedgerStore
from projections.base import Projection
from projections.database import Connection, DatabaseTarget
from projections.runner import Projector, build_projections, read_positions
from projections.tables import POSITIONS, SHADOW_SUFFIX, drop_tables, existing_tables

NATS_SUFFIX = "@nats"
"""Ends the position name of a projection fed from the NATS stream."""

__all__ = [
    "ProjectionStatus",
    "RebuildResult",
    "paused_gc",
    "pooled_projection_status",
    "projection_status",
    "rebuild",
]

logger = logging.getLogger(__name__)

SWAP_LOCK_TIMEOUT = "30s"
"""Maximum wait of the swap for table locks held by readers (PostgreSQL)."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block, for a rebuild process.

    Folds contain no reference cycles, so reference counting frees them. The
    cyclic collector only rescans the large fold cache, which cost about 7% of
    a rebuild's time in ``bench/projections.py``. It affects the whole process.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild did.

    Attributes:
        names: The projections rebuilt.
        events: Events the rebuild applied.
        position: Log position of the rebuilt tables when swapped in.
        seconds: Wall-clock duration.
        swapped: The rebuilt tables replaced the live ones.
    """

    names: tuple[str, ...]
    events: int
    position: int
    seconds: float
    swapped: bool


def rebuild(
    store: LedgerStore,
    target: DatabaseTarget,
    names: Sequence[str] | None = None,
    *,
    batch_size: int = 5000,
    swap: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> RebuildResult:
    """Rebuild projections from the log and swap them in atomically.

    Args:
        store: The ledger's store.
        target: The database of the read models.
        names: Projections to rebuild; all when None.
        batch_size: Events per transaction.
        swap: Replace the live tables; False leaves the shadow tables for inspection.
        on_progress: Called with (position, log end) after each batch.

    Raises:
        ValueError: A name is not a projection.
        RuntimeError: Another rebuild runs in the same PostgreSQL schema.
    """
    started = time.monotonic()
    shadows = build_projections(target, names, shadow=True)
    conn = target.connect()
    try:
        if target.is_postgres:
            # Held by this session until it closes: one rebuild per schema at a time.
            row = conn.fetchone(
                "SELECT pg_try_advisory_lock(hashtext(%s))",
                (f"smsledger-projections-rebuild:{target.schema}",),
            )
            if row is None or not row[0]:
                raise RuntimeError(
                    f"another rebuild of the read models in schema {target.schema!r} is "
                    "running; wait for it to finish"
                )
        with conn.transaction():
            has_positions = _has_positions(conn)
            for projection in shadows:
                # Start from nothing: a rebuild that was interrupted left its tables.
                drop_tables(conn, projection.specs, SHADOW_SUFFIX)
                if has_positions:
                    conn.execute(
                        f"DELETE FROM {target.table(POSITIONS)} WHERE name = %s",
                        (projection.position_name,),
                    )
        projector = Projector(store, target, shadows, batch_size=batch_size)
        events = 0
        try:
            while True:
                end = store.max_position()

                def report(position: int, end: int = end) -> None:
                    if on_progress is not None:
                        on_progress(position, end)

                events += projector.catch_up(on_progress=report)
                # Catch up until one batch from the end, so the live projector
                # has little to redo after the swap.
                if store.max_position() - projector.position <= batch_size:
                    break
        finally:
            projector.close()
        position = min(read_positions(conn)[p.position_name][0] for p in shadows)
        if swap:
            _swap(conn, shadows)
            logger.info(
                "read models rebuilt and swapped in",
                extra={"projections": [p.name for p in shadows], "position": position},
            )
    finally:
        conn.close()
    return RebuildResult(
        tuple(p.name for p in shadows), events, position, time.monotonic() - started, swap
    )


def _has_positions(conn: Connection) -> bool:
    return POSITIONS in existing_tables(conn)


def _swap(conn: Connection, shadows: Sequence[Projection]) -> None:
    """Replace live tables and positions with the shadow ones in one transaction."""
    target = conn.target
    positions = target.table(POSITIONS)
    with conn.transaction():
        if target.is_postgres:
            conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
        for shadow in shadows:
            row = conn.fetchone(
                f"SELECT position FROM {positions} WHERE name = %s", (shadow.position_name,)
            )
            if row is None:
                raise RuntimeError(f"rebuild of {shadow.name!r} lost its position row")
            # The live position row is locked first, as every projector does.
            updated = conn.execute(
                f"UPDATE {positions} SET position = %s, generation = generation + 1, "
                "updated_at = %s WHERE name = %s",
                (row[0], time.time_ns() // 1000, shadow.name),
            )
            if updated.rowcount != 1:
                conn.execute(
                    f"INSERT INTO {positions} (name, position, generation, updated_at) "
                    "VALUES (%s, %s, 1, %s)",
                    (shadow.name, row[0], time.time_ns() // 1000),
                )
            conn.execute(f"DELETE FROM {positions} WHERE name = %s", (shadow.position_name,))
            for spec in shadow.specs:
                conn.execute(f"DROP TABLE IF EXISTS {target.table(spec.base)}")
                conn.execute(
                    f"ALTER TABLE {target.table(spec.base + SHADOW_SUFFIX)} RENAME TO {spec.base}"
                )


@dataclass(frozen=True)
class ProjectionStatus:
    """Where one projection is in the log.

    Attributes:
        name: Projection name (a running rebuild shows as ``NAME@rebuild``).
        position: Last log position applied.
        lag: Log positions between it and the log's end.
        updated_at: When the position last moved (epoch microseconds).
        standby: True when the same projection also has a position fed
            from the other source (the log or NATS) that moved more
            recently. Only one source runs per database, so this one is
            idle and its lag is no sign of trouble.
    """

    name: str
    position: int
    lag: int
    updated_at: int
    standby: bool = False


def projection_status(store: LedgerStore, target: DatabaseTarget) -> list[ProjectionStatus]:
    """Return every stored projection position with its lag behind the log's end.

    Projections that never ran have no position yet and are not listed.
    """
    end = store.max_position()
    conn = target.connect()
    try:
        if not _has_positions(conn):
            return []
        rows = conn.fetchall(
            f"SELECT name, position, updated_at FROM {target.table(POSITIONS)} ORDER BY name"
        )
    finally:
        conn.close()
    return _statuses(end, rows)


def pooled_projection_status(store: LedgerStore, target: DatabaseTarget) -> list[ProjectionStatus]:
    """Return what :func:`projection_status` returns, read through the store's own pool.

    Opens no connection of its own, so a probe that polls it adds no
    connection to those the Helm chart's connection budget counts.
    """
    end = store.max_position()
    datastore: Any = cast(Any, store.recorder).datastore
    with datastore.transaction(commit=False) as cursor:
        if target.is_postgres:
            cursor.execute(
                "SELECT to_regclass(%s) IS NOT NULL AS present", (target.table(POSITIONS),)
            )
        else:
            cursor.execute(
                "SELECT COUNT(*) AS present FROM sqlite_master WHERE type = 'table' AND name = ?",
                (POSITIONS,),
            )
        if not cursor.fetchall()[0]["present"]:
            return []
        cursor.execute(
            f"SELECT name, position, updated_at FROM {target.table(POSITIONS)} ORDER BY name"
        )
        # Rows are mappings on PostgreSQL and sqlite3.Row on SQLite: both index by name.
        rows = [(r["name"], r["position"], r["updated_at"]) for r in cursor.fetchall()]
    return _statuses(end, rows)


def _statuses(end: int, rows: Sequence[tuple[Any, ...]]) -> list[ProjectionStatus]:
    """Turn ``(name, position, updated_at)`` rows into statuses against the log's end."""
    # Latest move of each projection over both of its sources.
    moved: dict[str, int] = {}
    for name, _, updated in rows:
        projection = str(name).removesuffix(NATS_SUFFIX)
        moved[projection] = max(moved.get(projection, 0), int(updated))
    statuses = []
    for name, position, updated in rows:
        projection = str(name).removesuffix(NATS_SUFFIX)
        statuses.append(
            ProjectionStatus(
                str(name),
                int(position),
                max(end - int(position), 0),
                int(updated),
                standby="@" not in projection and int(updated) < moved[projection],
            )
        )
    return statuses
