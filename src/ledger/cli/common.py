"""Helpers shared by the commands."""

from __future__ import annotations

import gc
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import click
from rich.console import Console

from ledger.errors import LedgerError
from ledger.runtime import Runtime, build_runtime, storage_config
from ledger.settings import ConfigurationError, load_settings
from ledger.storage.store import LedgerStore

__all__ = [
    "LedgerGroup",
    "check_database_exists",
    "missing_table",
    "missing_table_message",
    "open_runtime",
    "open_store",
    "output_console",
    "remember_database",
    "tune_garbage_collector",
]

_PIPED_WIDTH = 200
"""Columns of output written to a file or pipe."""


def open_runtime(database_url: str | None = None, *, create_tables: bool | None = None) -> Runtime:
    """Build the runtime from settings, turning configuration errors into CLI errors.

    ``create_tables`` None follows ``SMSLEDGER_CREATE_TABLES``. Without table
    creation a SQLite file must already exist: opening it would create it.
    """
    try:
        overrides = {"database_url": database_url} if database_url else {}
        settings = load_settings(**overrides)
        if create_tables is None:
            create_tables = settings.create_tables
        url = settings.resolved_database_url
        if not create_tables:
            check_database_exists(url)
        remember_database(url)
        return build_runtime(settings, create_tables=create_tables)
    except (ConfigurationError, LedgerError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def open_store(database_url: str | None = None) -> LedgerStore:
    """Open the event store alone, without creating tables.

    It needs no master key, because the hashes cover ciphertext.
    """
    try:
        overrides = {"database_url": database_url} if database_url else {}
        settings = load_settings(**overrides)
        url = settings.resolved_database_url
        check_database_exists(url)
        remember_database(url)
        return LedgerStore(storage_config(settings, create_tables=False))
    except (ConfigurationError, LedgerError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def check_database_exists(url: str) -> None:
    """Fail when ``url`` names a SQLite file that does not exist.

    Raises:
        click.ClickException: The file is missing.
    """
    if url.startswith("sqlite:"):
        path = _sqlite_path(url)
        if path != ":memory:" and not Path(path).exists():
            raise click.ClickException(
                f"no ledger database at {path}; check the URL or run `smsledger migrate`"
            )


def _sqlite_path(url: str) -> str:
    # As StorageConfig reads it: sqlite:///relative/path and sqlite:////absolute/path.
    parsed = urlparse(url)
    return unquote(parsed.netloc + parsed.path.removeprefix("/"))


_DATABASE_KEY = "ledger.database_url"
"""Key in the click context's ``meta`` of the database URL the command opened."""


def remember_database(url: str) -> None:
    """Record the URL so that :class:`LedgerGroup` can name the database in errors."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_DATABASE_KEY] = url


_MISSING_TABLE = (
    re.compile(r'relation "(?:[^".]+\.)?([^"]+)" does not exist'),  # PostgreSQL
    re.compile(r"no such table: (?:\w+\.)?(\w+)"),  # SQLite
)


def missing_table(error: BaseException) -> str | None:
    """Return the table that ``error`` or one of its causes reports missing, if any.

    The drivers' errors reach the commands wrapped by eventsourcing, the
    store and the commands themselves, some with the cause suppressed, so
    the messages of the whole chain are searched.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for pattern in _MISSING_TABLE:
            match = pattern.search(str(current))
            if match:
                return match.group(1)
        current = current.__cause__ or current.__context__
    return None


_SQLITE_EVENTS = "stored_events"
"""The events table on SQLite, named by eventsourcing.

The other ledger tables start with ``ledger_``.
"""

_READ_MODEL_PREFIX = "rm_"
"""Start of the read models' table names."""


def missing_table_message(table: str, url: str | None) -> str:
    """Explain a missing table of the database at ``url`` (None when not known)."""
    if table.startswith("ledger_") or table == _SQLITE_EVENTS:
        missing = "no ledger tables"
    elif table.startswith(_READ_MODEL_PREFIX):
        missing = "no read-model tables"
    else:
        missing = f"no table {table}"
    if url is None:
        where = "in that database"
    elif url.startswith("sqlite:"):
        where = f"in {_sqlite_path(url)}"
    else:
        schema = parse_qs(urlparse(url).query).get("schema", ["public"])[0]
        where = f"in schema {schema!r} of that database"
    return f"{missing} {where}; check the URL or run `smsledger migrate`"


class LedgerGroup(click.Group):
    """A command group that reports configuration errors and missing tables in one line.

    Both reach the commands from deep inside (settings, security, storage),
    so they are translated here, once for every command, instead of
    surfacing as tracebacks.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, turning the errors above into :class:`click.ClickException`."""
        try:
            return super().invoke(ctx)
        except ConfigurationError as error:
            raise click.ClickException(str(error)) from error
        except Exception as error:
            table = missing_table(error)
            if table is None:
                raise
            url = ctx.meta.get(_DATABASE_KEY)
            raise click.ClickException(missing_table_message(table, url)) from error


_GC_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


def tune_garbage_collector() -> None:
    """Collect cyclic garbage less often, for a process that allocates per event.

    With the default threshold (700 allocations) the collector runs every
    few events and scans the in-flight window each time. Raising it cut the
    relay's CPU time per event by about 15% in a run of the publishers of
    ``bench/relay.py`` on a busy 2-core machine (estimate from two runs), and
    shortens the server's pauses while it holds many cached messages.
    Objects alive after start-up are frozen out of the scans.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_THRESHOLD, 50, 100)


def output_console() -> Console:
    """Return a console for standard output, wide when writing to a file or pipe.

    Rich assumes 80 columns when standard output is not a terminal, which
    cuts table headers and wraps history lines. A set ``COLUMNS`` still wins.
    """
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=_PIPED_WIDTH)
    return console
