"""Helpers of the read models' database access."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.runtime import Runtime
from ledger.storage.store import StorageConfig
from projections.database import DatabaseTarget, encode_copy
from tests.projections.helpers import target_of

AWKWARD = ["plain", "tab\there", "new\nline", "back\\slash", "cr\rx", "\\N", "", "üñï €", "\\t"]


def test_encode_copy_escapes_text_format() -> None:
    data = encode_copy([("a\tb", None, 7), ("c\\d", "e\nf", -1)])
    assert data.count == 2
    assert data.payload == b"a\\tb\t\\N\t7\nc\\\\d\te\\nf\t-1\n"
    assert encode_copy([]).payload == b""


def test_upsert_round_trips_awkward_text(runtime: Runtime, tmp_path: Path) -> None:
    conn = target_of(runtime).connect()
    table = conn.target.table("rm_test_copy")
    try:
        conn.execute(f"CREATE TABLE {table} (k INTEGER PRIMARY KEY, v TEXT)")
        rows = [(n, value) for n, value in enumerate(AWKWARD)] + [(99, None)]
        with conn.transaction():
            conn.upsert(
                table,
                (("k", "INTEGER"), ("v", "TEXT")),
                rows,
                "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            )
        stored = sorted(conn.fetchall(f"SELECT k, v FROM {table}"))
        assert stored == rows
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()


def test_upsert_outside_transaction_rejected(postgres_schema_url: str) -> None:
    env = StorageConfig(url=postgres_schema_url).eventsourcing_env()
    conn = DatabaseTarget.from_env(env).connect()
    try:
        with pytest.raises(RuntimeError, match="inside transaction"):
            conn.upsert("x", (("k", "INTEGER"),), [(1,)], "ON CONFLICT DO NOTHING")
    finally:
        conn.close()


def test_in_memory_sqlite_rejected() -> None:
    env = StorageConfig(url="sqlite:///:memory:").eventsourcing_env()
    with pytest.raises(ValueError, match="in memory"):
        DatabaseTarget.from_env(env)
