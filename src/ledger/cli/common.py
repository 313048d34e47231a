"""Helpers shared by the commands."""

from __future__ import annotations

import click

from ledger.errors import LedgerError
from ledger.runtime import Runtime, build_runtime, storage_config
from ledger.settings import ConfigurationError, load_settings
from ledger.storage.store import LedgerStore

__all__ = ["open_runtime", "open_store"]


def open_runtime(database_url: str | None = None, *, create_tables: bool | None = None) -> Runtime:
    """Build the runtime from settings, turning configuration errors into CLI errors.

    ``create_tables`` None follows ``SMSLEDGER_CREATE_TABLES``.
    """
    try:
        overrides = {"database_url": database_url} if database_url else {}
        settings = load_settings(**overrides)
        if create_tables is None:
            create_tables = settings.create_tables
        return build_runtime(settings, create_tables=create_tables)
    except (ConfigurationError, LedgerError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def open_store(database_url: str | None = None) -> LedgerStore:
    """Open the event store alone; it needs no master key (hashes cover ciphertext)."""
    try:
        overrides = {"database_url": database_url} if database_url else {}
        settings = load_settings(**overrides)
        return LedgerStore(storage_config(settings, create_tables=False))
    except (ConfigurationError, LedgerError, ValueError) as error:
        raise click.ClickException(str(error)) from error
