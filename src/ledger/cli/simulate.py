"""``smsledger simulate``: drive a running server with realistic traffic."""

from __future__ import annotations

import click

__all__ = ["simulate_command"]


@click.command("simulate")
def simulate_command() -> None:
    """Drive a running ledger with simulated carrier traffic and check the result."""
    raise click.ClickException("not implemented yet")
