"""``smsledger serve``: run the gRPC server."""

from __future__ import annotations

import asyncio
import logging

import click

from ledger.cli.common import open_runtime
from ledger.server.app import serve

__all__ = ["serve_command"]


@click.command("serve")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
@click.option("--address", help="Overrides SMSLEDGER_GRPC_ADDRESS, such as 0.0.0.0:50051.")
def serve_command(database_url: str | None, address: str | None) -> None:
    """Run the ledger's gRPC server until SIGTERM or Ctrl-C."""
    runtime = open_runtime(database_url)
    if address:
        runtime.settings = runtime.settings.model_copy(update={"grpc_address": address})
    logging.basicConfig(
        level=runtime.settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    asyncio.run(serve(runtime))
