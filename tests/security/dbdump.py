"""Every row of every table of a ledger database, for searches and comparisons."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg

Rows = dict[str, list[tuple[Any, ...]]]


def dump_tables(database_url: str) -> Rows:
    """Return the rows of every table, by table name, in a stable order."""
    if database_url.startswith("sqlite"):
        parsed = urlparse(database_url)
        path = parsed.netloc + parsed.path.removeprefix("/")
        with sqlite3.connect(path) as conn:
            names = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            return {
                n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names
            }
    parsed = urlparse(database_url)
    schema = parse_qs(parsed.query).get("schema", ["public"])[0]
    base = database_url.split("?", 1)[0]
    with psycopg.connect(base) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
        ]
        return {
            n: sorted(conn.execute(f'SELECT * FROM "{schema}"."{n}"').fetchall(), key=repr)
            for n in names
        }


def as_text(value: Any) -> str:
    """Return a column value as text to search: bytes decoded loosely, the rest as repr."""
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def tables_containing(rows: Rows, needle: str) -> list[str]:
    """Return the tables with a column value that contains ``needle``."""
    return [
        name
        for name, table in rows.items()
        if any(needle in as_text(value) for row in table for value in row)
    ]
