"""``smsledger keys`` (master-key rotation) and ``smsledger tokens`` (bearer tokens)."""

from __future__ import annotations

import json
import sys

import click

from ledger.cli.common import open_runtime
from ledger.privacy.rotation import rewrap_keys
from ledger.security.policy import Role
from ledger.security.tokens import hash_token, new_token

__all__ = ["keys_group", "tokens_group"]


@click.group("keys")
def keys_group() -> None:
    """Manage the keys that protect personal data."""


@keys_group.command("rotate")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
def rotate_command(database_url: str | None) -> None:
    """Wrap every subject key again under SMSLEDGER_MASTER_KEY.

    Run it after giving every node the new key as SMSLEDGER_MASTER_KEY and
    the old one in SMSLEDGER_PREVIOUS_MASTER_KEYS; then remove the old key.
    Exits with status 1 when some key opens under none of the configured keys.
    """
    runtime = open_runtime(database_url, create_tables=False)
    try:
        result = rewrap_keys(runtime.store, runtime.ledger.keyring.crypto)
    finally:
        runtime.close()
    click.echo(
        f"re-wrapped {result.rewrapped} key(s); {result.current} already current; "
        f"{result.changed} changed meanwhile; {result.unreadable} unreadable"
    )
    if result.unreadable:
        click.echo(
            "some keys open under none of the configured master keys: keep the key that "
            "wrapped them in SMSLEDGER_PREVIOUS_MASTER_KEYS and run this again",
            err=True,
        )
        sys.exit(1)


@click.group("tokens")
def tokens_group() -> None:
    """Make bearer tokens for SMSLEDGER_TOKENS_FILE."""


@tokens_group.command("hash")
@click.option("--name", required=True, help="Name of the token in logs and limits.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice([r.value for r in Role]),
    help="Role granted; repeat for several.",
)
@click.option("--tenant", "tenants", multiple=True, help="Limit the token to a tenant; repeatable.")
@click.option("--stdin", "from_stdin", is_flag=True, help="Hash a token read from standard input.")
def hash_command(
    name: str, roles: tuple[str, ...], tenants: tuple[str, ...], from_stdin: bool
) -> None:
    """Print a new token (to stderr) and its entry for the tokens file (to stdout).

    Only the entry goes in the file, and it contains the token's SHA-256 digest.
    Give the token to the client; it is not shown again.
    """
    token = sys.stdin.readline().strip() if from_stdin else new_token()
    if not token:
        raise click.UsageError("standard input held no token")
    if not from_stdin:
        click.echo(f"token: {token}", err=True)
    lines = [
        "[[tokens]]",
        f"name = {_toml_string(name)}",
        f'sha256 = "{hash_token(token)}"',
        "roles = [" + ", ".join(_toml_string(r) for r in roles) + "]",
    ]
    if tenants:
        lines.append("tenants = [" + ", ".join(_toml_string(t) for t in tenants) + "]")
    click.echo("\n".join(lines))


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string, escapes included.
    return json.dumps(value)
