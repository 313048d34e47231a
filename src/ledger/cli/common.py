"""Helpers shared by the commands."""

from __future__ import annotations

import click

from ledger.errors import LedgerError
from ledger.runtime import Runtime, build_runtime
from ledger.settings import ConfigurationError, load_settings

__all__ = ["open_runtime"]


def open_runtime(database_url: str | None = None, *, create_tables: bool = True) -> Runtime:
    """Build the runtime from settings, turning configuration errors into CLI errors."""
    try:
        overrides = {"database_url": database_url} if database_url else {}
        settings = load_settings(**overrides)
        return build_runtime(settings, create_tables=create_tables)
    except (ConfigurationError, LedgerError, ValueError) as error:
        raise click.ClickException(str(error)) from error
