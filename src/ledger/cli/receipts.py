"""``smsledger receipts``: parse receipts offline, and manage kept receipts."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from ledger.cli.common import open_runtime
from ledger.errors import LedgerError
from ledger.receipts.ids import canonical_carrier_id
from ledger.receipts.model import CarrierProfile
from ledger.receipts.parse import FORMATS, parse_receipt
from ledger.receipts.profiles import ProfileConfigError, profile_from_mapping
from ledger.runtime import load_connections
from ledger.server.receipts import reprocess_unparsed
from ledger.settings import ConfigurationError, load_settings

__all__ = ["receipts_group"]


@click.group("receipts")
def receipts_group() -> None:
    """Parse carrier receipts and manage the ones the ledger kept aside."""


def _profile(connection: str, overrides: dict[str, object]) -> CarrierProfile:
    try:
        configured = load_connections(load_settings()).get(connection)
    except (ConfigurationError, ProfileConfigError, OSError) as error:
        raise click.ClickException(str(error)) from error
    base = configured or CarrierProfile(name=connection)
    if not overrides:
        return base
    try:
        changed = profile_from_mapping(connection, overrides)
    except ProfileConfigError as error:
        raise click.BadParameter(f"{error.field}: {error.reason}") from error
    return replace(base, **{name: getattr(changed, name) for name in overrides})


@receipts_group.command("parse")
@click.option("--connection", required=True, help="Carrier connection whose profile applies.")
@click.option(
    "--format",
    "format_name",
    type=click.Choice(FORMATS, case_sensitive=False),
    help="Receipt format; defaults to the connection's configured format.",
)
@click.option("--content-type", default="", help="Content type of the payload, for HTTP formats.")
@click.option("--timezone", help="Overrides the profile's zone of dates without one (UTC, +03:00).")
@click.option("--error-table", help="Overrides the profile's table for bare SMPP err codes.")
@click.option("--receipt-id-base", type=click.Choice(["text", "decimal", "hex"]))
@click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="Transport metadata.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
def parse_command(
    connection: str,
    format_name: str | None,
    content_type: str,
    timezone: str | None,
    error_table: str | None,
    receipt_id_base: str | None,
    metadata: tuple[str, ...],
    file: str,
) -> None:
    """Parse and normalize the receipt in FILE without recording anything.

    Prints one JSON object per report. Use it to onboard a carrier: try its
    receipts under different profile values until they read right.
    """
    overrides: dict[str, object] = {}
    if timezone:
        overrides["timezone"] = timezone
    if error_table:
        overrides["error_table"] = error_table
    if receipt_id_base:
        overrides["receipt_id_base"] = receipt_id_base
    profile = _profile(connection, overrides)
    pairs: dict[str, str] = {}
    for item in metadata:
        key, _, value = item.partition("=")
        pairs[key] = value
    body = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    try:
        parsed = parse_receipt(format_name or profile.format, body, content_type, profile, pairs)
    except LedgerError as error:
        raise click.ClickException(error.message) from error
    for receipt in parsed.receipts:
        click.echo(
            json.dumps(
                {
                    "status": receipt.status.value,
                    "final": receipt.final,
                    "permanent": receipt.permanent,
                    "carrier_message_id": receipt.carrier_message_id,
                    "canonical_id": canonical_carrier_id(
                        receipt.carrier_message_id, profile.receipt_id_base
                    )
                    if receipt.carrier_message_id
                    else None,
                    "error_code": receipt.error_code,
                    "error_table": receipt.error_table,
                    "done_at": receipt.done_at.isoformat() if receipt.done_at else None,
                    "segment": receipt.segment,
                    "warnings": list(receipt.warnings),
                    "redactions": list(parsed.redactions),
                }
            )
        )


@receipts_group.command("reprocess")
@click.option("--tenant", required=True)
@click.option("--connection", help="Only this connection's receipts.")
@click.option("--limit", default=1000, show_default=True)
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
def reprocess_command(
    tenant: str, connection: str | None, limit: int, database_url: str | None
) -> None:
    """Parse the kept unparsed receipts again and record those that parse now."""
    runtime = open_runtime(database_url, create_tables=False)

    async def execute(commands: list[object]) -> list[object]:
        return await asyncio.to_thread(runtime.ledger.execute, commands)  # type: ignore[arg-type]

    try:
        recorded, remaining = asyncio.run(
            reprocess_unparsed(runtime.ledger, execute, tenant, connection, limit)
        )
    finally:
        runtime.close()
    click.echo(f"recorded {recorded}; still unparsed {remaining}")
