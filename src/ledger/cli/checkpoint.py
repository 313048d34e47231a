"""``smsledger checkpoint``: signed checkpoints of the log head."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger.checkpoints import (
    append_checkpoint,
    generate_key,
    load_private_key,
    read_checkpoints,
    verify_checkpoints,
)
from ledger.cli.common import open_store
from ledger.settings import ConfigurationError, load_settings

__all__ = ["checkpoint_group"]


@click.group("checkpoint")
def checkpoint_group() -> None:
    """Sign the log head into a file kept outside the database, and check against it."""


@checkpoint_group.command("keygen")
def keygen_command() -> None:
    """Print a new signing key (for SMSLEDGER_CHECKPOINT_KEY) and its public key."""
    private, public = generate_key()
    click.echo(f"SMSLEDGER_CHECKPOINT_KEY={private}")
    click.echo(f"public key: {public}", err=True)


@checkpoint_group.command("write")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Overrides SMSLEDGER_CHECKPOINT_FILE.",
)
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
def write_command(path: Path | None, database_url: str | None) -> None:
    """Append one signed checkpoint of the current log head."""
    try:
        settings = load_settings()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error
    path = path or settings.checkpoint_file
    if settings.checkpoint_key is None or path is None:
        raise click.ClickException(
            "set SMSLEDGER_CHECKPOINT_KEY and SMSLEDGER_CHECKPOINT_FILE (or --file)"
        )
    try:
        key = load_private_key(settings.checkpoint_key.get_secret_value())
    except ValueError as error:
        raise click.ClickException(f"SMSLEDGER_CHECKPOINT_KEY: {error}") from error
    store = open_store(database_url)
    try:
        checkpoint = append_checkpoint(store, key, path)
    finally:
        store.close()
    click.echo(f"checkpoint at position {checkpoint.position} ({checkpoint.events} events)")


@checkpoint_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", help="Expected signing key (base64); recommended.")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
def verify_command(file: Path, public_key: str | None, database_url: str | None) -> None:
    """Check that the database still holds what every checkpoint in FILE recorded.

    Finds events removed from the end of a message, whole messages deleted,
    and a log rewritten with recomputed hashes. Exits with status 1 on any
    problem.
    """
    try:
        checkpoints = read_checkpoints(file)
    except (ValueError, TypeError) as error:
        raise click.ClickException(f"{file} is not a checkpoint file: {error}") from error
    if not checkpoints:
        raise click.ClickException(f"{file} holds no checkpoints: nothing to check against")
    store = open_store(database_url)
    try:
        problems = verify_checkpoints(store, checkpoints, public_key)
    finally:
        store.close()
    for problem in problems:
        click.echo(f"PROBLEM at checkpoint position {problem.position}: {problem.reason}")
    click.echo(f"checked {len(checkpoints)} checkpoints: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)
