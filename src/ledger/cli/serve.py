"""``smsledger serve``: run the gRPC server."""

from __future__ import annotations

import asyncio

import click

from ledger.cli.common import open_runtime, tune_garbage_collector
from ledger.logs import configure_logging
from ledger.server.app import serve

__all__ = ["serve_command"]


@click.command("serve")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
@click.option("--address", help="Overrides SMSLEDGER_GRPC_ADDRESS, such as 0.0.0.0:50051.")
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    help="Overrides SMSLEDGER_LOG_FORMAT: one JSON object per line, or readable text.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Overrides SMSLEDGER_LOG_LEVEL.",
)
def serve_command(
    database_url: str | None,
    address: str | None,
    log_format: str | None,
    log_level: str | None,
) -> None:
    """Run the ledger's gRPC server until SIGTERM or Ctrl-C."""
    runtime = open_runtime(database_url)
    if address:
        runtime.settings = runtime.settings.model_copy(update={"grpc_address": address})
    settings = runtime.settings
    configure_logging(
        "text" if (log_format or settings.log_format) == "text" else "json",
        (log_level or settings.log_level).upper(),
    )
    tune_garbage_collector()
    try:
        asyncio.run(serve(runtime))
    except (RuntimeError, OSError) as error:
        if not _bind_failed(error):
            raise
        raise click.ClickException(
            f"cannot listen on {settings.grpc_address}: address in use or not available"
        ) from error


def _bind_failed(error: Exception) -> bool:
    """Tell whether ``error`` is gRPC's failure to bind the server's port.

    grpcio raises RuntimeError("Failed to bind to address ...") when the
    port is taken. Where grpcio returns port 0 instead, the server raises
    OSError("cannot listen on ...").
    """
    text = str(error)
    return text.startswith("Failed to bind") or text.startswith("cannot listen on")
