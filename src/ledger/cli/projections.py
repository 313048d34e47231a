"""``smsledger project``, ``smsledger projections`` and ``smsledger report``: the read models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledger.cli.common import open_runtime, output_console
from ledger.logs import configure_logging
from ledger.runtime import Runtime
from ledger.telemetry import Telemetry
from projections.database import DATABASE_ERRORS, DatabaseTarget
from projections.nats_source import NatsProjectionWorker, nats_worker
from projections.rebuild import paused_gc, projection_status, rebuild
from projections.runner import PROJECTIONS
from projections.server import worker_options
from projections.worker import ProjectionWorker

__all__ = ["project_command", "projections_group", "report_command"]

logger = logging.getLogger(__name__)

# A rebuild also raises RuntimeError when another rebuild runs at the same time.
_REBUILD_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, RuntimeError)


class _Time(click.ParamType[datetime]):
    """An ISO 8601 date or time; without a zone it is UTC."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 time such as 2026-01-31 or 2026-01-31T14:00Z",
                param,
                ctx,
            )
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _target(runtime: Runtime) -> DatabaseTarget:
    try:
        return DatabaseTarget.from_env(runtime.store.config.eventsourcing_env())
    except ValueError as error:
        raise click.ClickException(str(error)) from error


@click.command("project")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
@click.option(
    "--source",
    type=click.Choice(["log", "nats"]),
    default="log",
    show_default=True,
    help="Where events come from: the database log, or the NATS stream the relay publishes "
    "to (SMSLEDGER_NATS_URL, SMSLEDGER_NATS_STREAM).",
)
@click.option(
    "--consumer",
    default="smsledger-projections",
    show_default=True,
    help="With --source nats: name of the durable JetStream consumer.",
)
def project_command(database_url: str | None, source: str, consumer: str) -> None:
    """Run the read-model projections until SIGTERM or Ctrl-C.

    The worker catches up with the event log, then follows it (on PostgreSQL
    through LISTEN/NOTIFY with a polling fallback) and restarts itself after
    database failures. On PostgreSQL one worker per schema projects at a time;
    others stand by.
    """
    runtime = open_runtime(database_url)
    settings = runtime.settings
    configure_logging(settings.log_format, settings.log_level)
    worker: ProjectionWorker | NatsProjectionWorker
    if source == "nats":
        try:
            worker = nats_worker(runtime, consumer)
        except ValueError as error:
            raise click.ClickException(str(error)) from error
    else:
        worker = ProjectionWorker(runtime.store, _target(runtime), worker_options(runtime))
    telemetry = Telemetry.from_settings(settings, "smsledger-projector")
    if isinstance(worker, ProjectionWorker):
        telemetry.watch_projection_worker(worker)
    telemetry.watch_database(
        runtime.store, relay_stream=None, projections=True, orphan_age_seconds=None
    )

    async def run() -> None:
        await telemetry.start_process(settings.metrics_address)
        task = asyncio.create_task(worker.run(), name="projections")
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            await telemetry.close()

    try:
        asyncio.run(run())
    finally:
        runtime.close()
    logger.info("projections stopped")


@click.group("projections")
def projections_group() -> None:
    """Inspect and rebuild the read models."""


@projections_group.command("rebuild")
@click.argument("name", required=False, type=click.Choice(sorted(PROJECTIONS)))
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
@click.option(
    "--batch-size",
    default=5000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Events per transaction.",
)
@click.option(
    "--no-swap",
    is_flag=True,
    help="Leave the rebuilt tables beside the live ones (suffix _rebuild) without swapping.",
)
def rebuild_command(
    name: str | None, database_url: str | None, batch_size: int, no_swap: bool
) -> None:
    """Rebuild one read model (or all) from the event log, then swap it in.

    Ingestion and the running projections go on meanwhile; the swap replaces
    the tables and their position in one transaction.
    """
    runtime = open_runtime(database_url, create_tables=False)
    target = _target(runtime)
    console = Console()
    try:
        with Progress(
            TextColumn("rebuilding {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(name or "all read models", total=runtime.store.max_position())

            def on_progress(position: int, end: int) -> None:
                progress.update(task, completed=position, total=max(end, position))

            with paused_gc():
                result = rebuild(
                    runtime.store,
                    target,
                    [name] if name else None,
                    batch_size=batch_size,
                    swap=not no_swap,
                    on_progress=on_progress,
                )
    except _REBUILD_ERRORS as error:
        raise click.ClickException(
            f"rebuild failed; the live read models are unchanged: {error}"
        ) from error
    finally:
        runtime.close()
    rate = result.events / result.seconds if result.seconds else 0.0
    action = "swapped in" if result.swapped else "left in the *_rebuild tables"
    console.print(
        f"{', '.join(result.names)}: {result.events} events in {result.seconds:.1f} s "
        f"({rate:,.0f} events/s), {action} at position {result.position}"
    )


@projections_group.command("status")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
def status_command(database_url: str | None) -> None:
    """Print each read model's log position and its lag behind the log's end."""
    runtime = open_runtime(database_url, create_tables=False)
    try:
        statuses = projection_status(runtime.store, _target(runtime))
        end = runtime.store.max_position()
    finally:
        runtime.close()
    table = Table(title=f"Read models (log end {end})")
    for column in ("projection", "position", "lag (events)", "last moved"):
        table.add_column(column, justify="left" if column == "projection" else "right")
    for status in statuses:
        moved = datetime.fromtimestamp(status.updated_at / 1e6, UTC)
        table.add_row(
            status.name,
            str(status.position),
            f"{status.lag} (standby)" if status.standby else str(status.lag),
            moved.strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    output_console().print(table)
    if not statuses:
        click.echo("No read model has run yet: start `smsledger serve` or `smsledger project`.")


@click.command("report")
@click.option("--from", "start", required=True, type=_Time(), help="Start of the range (UTC).")
@click.option("--to", "end", required=True, type=_Time(), help="End of the range, exclusive.")
@click.option("--tenant", help="Only this tenant; all tenants when omitted.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML page with charts to this file.",
)
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
def report_command(
    start: datetime,
    end: datetime,
    tenant: str | None,
    html_path: Path | None,
    database_url: str | None,
) -> None:
    """Print delivery counts, delivery rate and latency per carrier for a time range.

    Messages count in the UTC hour of their first submission; every hour that
    overlaps the range is included.
    """
    from projections.report import load_report, print_report, render_html

    if end <= start:
        raise click.BadParameter("must be after --from", param_hint="--to")
    runtime = open_runtime(database_url, create_tables=False)
    target = _target(runtime)
    try:
        conn = target.connect()
        try:
            data = load_report(conn, int(start.timestamp()), int(end.timestamp()), tenant)
        finally:
            conn.close()
    except DATABASE_ERRORS as error:
        raise click.ClickException(f"cannot read the read models: {error}") from error
    finally:
        runtime.close()
    print_report(output_console(), data)
    if html_path is not None:
        html_path.write_text(render_html(data), encoding="utf-8")
        click.echo(f"wrote {html_path}")
