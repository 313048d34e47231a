"""``smsledger migrate``: create or update every table before the services start."""

from __future__ import annotations

import click

from ledger.cli.common import open_runtime
from ledger.logs import configure_logging
from ledger.migrations import run_migrations

__all__ = ["migrate_command"]


@click.command("migrate")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
def migrate_command(database_url: str | None) -> None:
    """Create the ledger's tables, the read models' tables and the relay's position table.

    Safe to run again: it only creates what is missing. Run it once per
    deployment, before the servers, relays and projection workers start with
    SMSLEDGER_CREATE_TABLES=false, so that they never race to create tables.
    """
    configure_logging("text")
    runtime = open_runtime(database_url, create_tables=True)
    try:
        steps = run_migrations(runtime)
    finally:
        runtime.close()
    click.echo(f"tables are up to date (ledger, {', '.join(steps)})")
