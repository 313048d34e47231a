"""``smsledger history`` and ``smsledger verify``: the auditor's commands."""

from __future__ import annotations

import sys

import click
from google.protobuf.json_format import MessageToDict
from rich.progress import Progress

from ledger.audit import BrokenLink, VerifyReport, verify_log
from ledger.cli.common import open_runtime, open_store, output_console
from ledger.errors import LedgerError
from ledger.server.history import history_events
from ledger.v1 import events_pb2

__all__ = ["history_command", "verify_command"]


@click.command("history")
@click.argument("tenant")
@click.argument("message_id")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per event.")
def history_command(tenant: str, message_id: str, database_url: str | None, as_json: bool) -> None:
    """Print every event of one message, with raw payloads, in version order."""
    import json

    runtime = open_runtime(database_url, create_tables=False)
    try:
        events = history_events(runtime.ledger, tenant, message_id)
    except LedgerError as error:
        raise click.ClickException(error.message) from error
    finally:
        runtime.close()
    console = output_console()
    for item in events:
        data = MessageToDict(item, preserving_proto_field_name=True)
        if as_json:
            click.echo(json.dumps(data, sort_keys=True))
            continue
        event = item.event
        console.print(
            f"[bold]v{event.version}[/bold] {event.type:<16} "
            f"occurred {event.occurred_at.ToJsonString()} "
            f"recorded {event.recorded_at.ToJsonString()} "
            f"status {events_pb2.MessageStatus.Name(event.status).removeprefix('MESSAGE_STATUS_')} "
            f"hash {event.hash[:16]}..."
        )
        body = event.WhichOneof("body")
        if body:
            console.print(f"    {MessageToDict(getattr(event, body))}")
        if item.HasField("raw"):
            console.print(f"    raw ({item.raw.format}): {item.raw.body!r}")


@click.command("verify")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
def verify_command(database_url: str | None) -> None:
    """Recompute every message's hash chain and report broken links.

    Exits with status 1 when any link is broken.
    """
    store = open_store(database_url)
    report = VerifyReport()
    broken: list[BrokenLink] = []
    console = output_console()
    try:
        # Off a terminal the bar would only leave an empty line behind.
        with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task("verifying", total=store.max_position() or 1)
            for item in verify_log(
                store, on_progress=lambda done, top: progress.update(task, completed=done)
            ):
                if isinstance(item, BrokenLink):
                    broken.append(item)
                    progress.console.print(
                        f"BROKEN position {item.position} message {item.aggregate_id} "
                        f"version {item.version}: {item.reason}"
                    )
                else:
                    report = item
    finally:
        store.close()
    click.echo(
        f"verified {report.events} events of {report.messages} messages: "
        f"{report.broken} broken link(s)"
    )
    sys.exit(1 if broken else 0)
