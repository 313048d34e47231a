"""``smsledger simulate``: drive a running server with realistic traffic."""

from __future__ import annotations

import asyncio
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.simulate.carriers import build_carriers
from ledger.simulate.connections import write_connections as write_connections_file
from ledger.simulate.driver import DriverConfig
from ledger.simulate.formats.mode import FormatsMode
from ledger.simulate.formats.probe import UnknownConnectionsError
from ledger.simulate.plan import PlanConfig, scenario_names
from ledger.simulate.readmodel_check import print_check, run_check
from ledger.simulate.report import summary_table, write_json_report
from ledger.simulate.runner import Prepared, SimulationResult, prepare, run_simulation

__all__ = ["simulate_command"]

_SHOWN = 20
"""Mismatches and command problems printed in full; the rest are only counted."""


@click.command("simulate")
@click.option("--target", default="127.0.0.1:50051", show_default=True, help="Server address.")
@click.option("--messages", default=20_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", type=int, help="Seed of the traffic plan; random when unset (printed).")
@click.option(
    "--concurrency",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Message scripts (unary) or ExecuteBatch calls (batch mode) in flight.",
)
@click.option(
    "--batch-size",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Commands per ExecuteBatch call; 0 sends one command per RPC.",
)
@click.option("--tenant", default="sim", show_default=True, help="Tenant of every message.")
@click.option(
    "--carriers",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of simulated carrier connections.",
)
@click.option(
    "--expiry-wait",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait for the server's sweeper to infer expected expiries.",
)
@click.option(
    "--expiry-grace",
    default=600,
    show_default=True,
    type=click.IntRange(min=0),
    help="The server's SMSLEDGER_EXPIRY_GRACE_SECONDS; expiry scenarios are dated before it.",
)
@click.option(
    "--skip-scenario",
    "skipped",
    multiple=True,
    type=click.Choice(scenario_names()),
    help="Leave a scenario family out; repeat for several.",
)
@click.option(
    "--run-id", help="Prefix of message and carrier ids (letters, digits); random when unset."
)
@click.option(
    "--max-seconds",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Bound on the sending phase, in seconds.",
)
@click.option(
    "--report-json",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the ground truth, summary and mismatches to this JSON file.",
)
@click.option(
    "--check-read-models",
    is_flag=True,
    help=(
        "Also check that the server's read models match the ground truth (counts exactly, "
        "latency percentiles within the histograms' error); needs a tenant of this run only."
    ),
)
@click.option(
    "--receipt-formats",
    is_flag=True,
    help=(
        "Send receipts as carriers do: SMPP receipt texts and deliver_sm PDUs, Kannel, "
        "Jasmin, Twilio, Vonage, Plivo, Sinch, Infobip, AWS and MessageBird payloads, "
        "through RecordRawReceipt (raw ExecuteBatch entries in batch mode). Uses the "
        "simulator's own 11 connections instead of --carriers; the server must run with "
        "the profiles that --write-connections writes."
    ),
)
@click.option(
    "--write-connections",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help=(
        "Write the connection profiles of --receipt-formats to this TOML file and exit. "
        "Start the server with SMSLEDGER_CONNECTIONS_FILE set to it."
    ),
)
def simulate_command(
    target: str,
    messages: int,
    seed: int | None,
    concurrency: int,
    batch_size: int,
    tenant: str,
    carriers: int,
    expiry_wait: float,
    expiry_grace: int,
    skipped: tuple[str, ...],
    run_id: str | None,
    max_seconds: float,
    report_json: Path | None,
    check_read_models: bool,
    receipt_formats: bool,
    write_connections: Path | None,
) -> None:
    """Drive a running ledger with simulated carrier traffic and check the result.

    Every message follows a scripted scenario; afterwards each message's
    state is read back with GetMessage and compared with the simulator's
    ground truth. Exits with status 1 when any state or command result
    differs from it.

    With --receipt-formats, receipts travel in real carrier formats. First
    write the connection profiles and start the server with them:

        smsledger simulate --write-connections sim-connections.toml
        SMSLEDGER_CONNECTIONS_FILE=sim-connections.toml smsledger serve

    The run is refused when the server reads a probe receipt of any
    connection differently from the simulator.
    """
    console = Console()
    if not console.is_terminal:
        # Rich assumes 80 columns for a file or pipe, which wraps the summary table.
        console = Console(width=160)
    if write_connections is not None:
        try:
            write_connections_file(write_connections)
        except OSError as error:
            raise click.ClickException(
                f"cannot write connection profiles to {write_connections}: {error}"
            ) from error
        console.print(
            f"connection profiles written to {write_connections}; start the server with "
            f"SMSLEDGER_CONNECTIONS_FILE={write_connections}"
        )
        return
    seed = secrets.randbelow(2**31) if seed is None else seed
    run_id = run_id or secrets.token_hex(4)
    formats = FormatsMode(seed) if receipt_formats else None
    try:
        prepared = prepare(
            PlanConfig(
                messages=messages,
                seed=seed,
                run_id=run_id,
                now=datetime.now(UTC),
                carriers=tuple(formats.carriers if formats else build_carriers(carriers)),
                expiry_grace_seconds=expiry_grace,
                skip=frozenset(skipped),
            ),
            formats.rewrite if formats else None,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    config = DriverConfig(
        target=target,
        tenant=tenant,
        concurrency=concurrency,
        batch_size=batch_size,
        expiry_wait_seconds=expiry_wait,
        max_seconds=max_seconds,
        joined_report_connections=formats.joined_report_connections if formats else frozenset(),
    )
    if formats is not None:
        try:
            asyncio.run(formats.check(target))
        except (UnknownConnectionsError, ConnectionError) as error:
            raise click.ClickException(str(error)) from error
        console.print(f"receipt formats: {formats.summary()}")
    console.print(
        f"run {run_id}, seed {seed}: {messages} messages, {prepared.command_count} commands "
        f"to {target} ({'batches of ' + str(batch_size) if batch_size else 'unary'}, "
        f"concurrency {concurrency})"
    )
    try:
        result = asyncio.run(_run_with_progress(console, prepared, config))
    except ConnectionError as error:
        raise click.ClickException(str(error)) from error
    except grpc.aio.AioRpcError as error:
        raise click.ClickException(
            f"reading messages back from {target} failed: {error.code().name}: {error.details()}"
        ) from error
    _print_result(console, prepared, result)
    if report_json is not None:
        write_json_report(
            report_json,
            result.info,
            prepared.plans,
            prepared.expected,
            result.rows,
            result.mismatches,
            result.stats.problems,
        )
        console.print(f"report written to {report_json}")
    read_models_failed = False
    if check_read_models:
        check = run_check(target, tenant, prepared.expected, result.states)
        print_check(console, check)
        read_models_failed = check.failed
    sys.exit(1 if result.failed or read_models_failed else 0)


async def _run_with_progress(
    console: Console, prepared: Prepared, config: DriverConfig
) -> SimulationResult:
    columns = (
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        sending = progress.add_task("sending", total=prepared.command_count)
        checking = progress.add_task("checking", total=len(prepared.plans))
        return await run_simulation(
            prepared,
            config,
            on_command=lambda: progress.advance(sending),
            on_read=lambda: progress.advance(checking),
        )


def _print_result(console: Console, prepared: Prepared, result: SimulationResult) -> None:
    stats = result.stats
    console.print(summary_table(result.rows))
    rate = stats.commands / stats.seconds if stats.seconds else 0.0
    console.print(
        f"sent {stats.commands} commands for {len(prepared.plans)} messages in "
        f"{stats.seconds:.1f} s ({rate:.0f} commands/s, "
        f"{len(prepared.plans) / stats.seconds if stats.seconds else 0:.0f} messages/s); "
        f"{stats.retries} resent after overload; checked in {result.info.check_seconds:.1f} s"
    )
    if stats.problems:
        console.print(f"[bold red]{len(stats.problems)} unexpected command result(s):[/]")
        for problem in stats.problems[:_SHOWN]:
            console.print(f"  {problem.message_id} step {problem.step}: {problem.detail}")
    scenario_of = {p.message_id: p.scenario for p in prepared.plans}
    for mismatch in result.mismatches[:_SHOWN]:
        console.print(f"  MISMATCH ({scenario_of[mismatch.message_id]}) {mismatch.describe()}")
    style = "bold red" if result.mismatches else "bold green"
    console.print(f"[{style}]mismatches: {len(result.mismatches)}[/]")
