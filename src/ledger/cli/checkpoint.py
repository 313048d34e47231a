"""``smsledger checkpoint``: signed checkpoints of the log head."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from pathlib import Path

import click

from ledger.checkpoints import (
    Checkpoint,
    append_checkpoint,
    generate_key,
    load_private_key,
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
    expected_key = _public_key(public_key) if public_key is not None else None
    checkpoints = _read_file(file)
    if not checkpoints:
        raise click.ClickException(f"{file} holds no checkpoints: nothing to check against")
    store = open_store(database_url)
    try:
        problems = verify_checkpoints(store, checkpoints, expected_key)
    finally:
        store.close()
    for problem in problems:
        click.echo(f"PROBLEM at checkpoint position {problem.position}: {problem.reason}")
    click.echo(f"checked {len(checkpoints)} checkpoints: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


def _public_key(text: str) -> str:
    """Return the public key ``text`` in the checkpoints' base64 form, or raise BadParameter."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise click.BadParameter(
            "invalid base64; give the public key that `smsledger checkpoint keygen` printed",
            param_hint="--public-key",
        ) from error
    if len(raw) != 32:
        raise click.BadParameter(
            f"decodes to {len(raw)} bytes, not the 32 of an Ed25519 public key; give the "
            "public key that `smsledger checkpoint keygen` printed",
            param_hint="--public-key",
        )
    return base64.b64encode(raw).decode()


def _read_file(path: Path) -> list[Checkpoint]:
    """Read the checkpoints of ``path``, naming the file's line of the first bad one.

    :func:`ledger.checkpoints.read_checkpoints` parses each line on its own,
    so the positions in its errors are within the line, not the file.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"cannot read {path}: {error}") from error
    checkpoints = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            checkpoints.append(Checkpoint(**data))
        except (ValueError, TypeError) as error:
            raise click.ClickException(
                f"{path} line {number}: invalid checkpoint: {error}"
            ) from error
    return checkpoints
