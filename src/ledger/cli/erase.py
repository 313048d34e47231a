"""``smsledger erase``: erase a data subject, or re-apply logged erasures after a restore."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger.cli.common import open_runtime
from ledger.errors import LedgerError
from ledger.privacy.erasure import Eraser
from ledger.privacy.erasure_log import ErasureLog, ErasureLogError, read_erasure_log
from ledger.privacy.numbers import masked_for_error

__all__ = ["erase_command"]


@click.command("erase")
@click.argument("tenant", required=False)
@click.argument("number", required=False)
@click.option(
    "--reapply",
    "reapply_log",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Erasure log whose erasures are applied again (after restoring a backup).",
)
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
def erase_command(
    tenant: str | None, number: str | None, reapply_log: Path | None, database_url: str | None
) -> None:
    """Erase the data subject NUMBER (E.164) of TENANT by destroying its key.

    Pass NUMBER as '-' to read it from standard input, which keeps it out of
    the shell history and the process list. Every message to the number gets
    a DestinationErased event; parked and unparsed receipts that name it are
    deleted. With SMSLEDGER_ERASURE_LOG_FILE set, the erasure is logged first.
    """
    if reapply_log is not None:
        if tenant is not None or number is not None:
            raise click.UsageError("--reapply takes no TENANT or NUMBER")
        _reapply(reapply_log, database_url)
        return
    if tenant is None or number is None:
        raise click.UsageError("give TENANT and NUMBER, or --reapply LOGFILE")
    if number == "-":
        number = sys.stdin.readline().strip()
    runtime = open_runtime(database_url, create_tables=False)
    try:
        log_path = runtime.settings.erasure_log_file
        eraser = Eraser(runtime.ledger, ErasureLog(log_path) if log_path else None)
        result = eraser.erase(tenant, number)
    except LedgerError as error:
        raise click.ClickException(error.message) from error
    except OSError as error:
        raise click.ClickException(
            f"the erasure log could not be written ({error}); nothing was erased"
        ) from error
    finally:
        runtime.close()
    click.echo(
        f"erased {masked_for_error(number)} of tenant {tenant}: "
        f"{result.messages} message(s) marked, {result.receipts_deleted} kept receipt(s) "
        f"deleted, key {result.key_id or '(none)'}"
    )
    if log_path is None:
        click.echo(
            "warning: SMSLEDGER_ERASURE_LOG_FILE is not set, so a restored backup will not "
            "know of this erasure",
            err=True,
        )


def _reapply(path: Path, database_url: str | None) -> None:
    try:
        records = list(read_erasure_log(path))
    except (ErasureLogError, OSError) as error:
        raise click.ClickException(str(error)) from error
    runtime = open_runtime(database_url, create_tables=False)
    try:
        results = Eraser(runtime.ledger).reapply(records)
    except LedgerError as error:
        raise click.ClickException(error.message) from error
    finally:
        runtime.close()
    marked = sum(r.messages for r in results)
    click.echo(f"re-applied {len(results)} erasure(s): {marked} message(s) newly marked")
