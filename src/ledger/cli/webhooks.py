"""``smsledger webhooks``: the aggregator callback endpoint as its own process."""

from __future__ import annotations

import asyncio
import logging

import click

from ledger.cli.common import open_runtime
from ledger.settings import ConfigurationError
from ledger.webhooks.server import serve_webhooks

__all__ = ["webhooks_group"]


@click.group("webhooks")
def webhooks_group() -> None:
    """Receive delivery callbacks from aggregators over HTTP."""


@webhooks_group.command("serve")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
@click.option("--address", help="Overrides SMSLEDGER_WEBHOOK_ADDRESS, such as 0.0.0.0:8080.")
def serve_command(database_url: str | None, address: str | None) -> None:
    """Serve /hooks/<connection> without the gRPC server, until SIGTERM or Ctrl-C.

    For deployments that run the HTTP ingress apart from the gRPC nodes; both
    write to the same database. `smsledger serve` already runs the endpoint
    beside gRPC when SMSLEDGER_WEBHOOK_ADDRESS is set.
    """
    runtime = open_runtime(database_url)
    logging.basicConfig(
        level=runtime.settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        asyncio.run(serve_webhooks(runtime, address))
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error
