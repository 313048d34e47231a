"""``smsledger simulate``: drive a running server with realistic traffic."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.cli.common import output_console
from ledger.simulate.carriers import build_carriers
from ledger.simulate.channels import use_token
from ledger.simulate.connections import write_connections as write_connections_file
from ledger.simulate.driver import DriverConfig
from ledger.simulate.formats.mode import FormatsMode
from ledger.simulate.formats.probe import UnknownConnectionsError
from ledger.simulate.plan import PlanConfig, scenario_names
from ledger.simulate.readmodel_check import (
    ReadModelProbe,
    print_check,
    run_check,
    run_probe,
    run_wait_for_progress,
)
from ledger.simulate.report import summary_table, write_json_report
from ledger.simulate.runner import Prepared, SimulationResult, prepare, run_simulation
from ledger.simulate.steps import MessagePlan
from ledger.simulate.webhooks_mode import (
    DEFAULT_WEBHOOK_ADDRESS,
    WebhookEndpointError,
    WebhooksMode,
    load_webhooks,
    write_webhook_connections,
)
from ledger.webhooks.server import split_address

__all__ = ["simulate_command"]

_SHOWN = 20
"""Mismatches and command problems printed in full; the rest are only counted."""


@click.command("simulate")
@click.option("--target", default="127.0.0.1:50051", show_default=True, help="Server address.")
@click.option(
    "--token",
    envvar="SMSLEDGER_SIMULATE_TOKEN",
    help="Bearer token for a server with a tokens file; it needs the writer and reader roles "
    "(reader also serves the read-model check). Also read from SMSLEDGER_SIMULATE_TOKEN.",
)
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
    "--check-read-models/--no-check-read-models",
    default=None,
    help=(
        "Check that the server's read models match the ground truth: counts and failure "
        "causes per carrier, country and hour exactly, latency percentiles within the "
        "histograms' error. On by default when the server serves read models, its "
        "projections advance and the tenant had no messages before the run; "
        "--check-read-models insists (and fails where it cannot check)."
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
    "--webhooks",
    is_flag=True,
    help=(
        "Deliver the receipts of the Twilio, Vonage, Plivo, Sinch, Infobip, MessageBird, "
        "Kannel and Jasmin connections as signed HTTP callbacks to the server's webhook "
        "endpoint, with retries after 429 and 503 and some callbacks delivered twice; "
        "implies --receipt-formats. SMPP and AWS receipts keep using gRPC. Reads the "
        "secrets from --connections-file."
    ),
)
@click.option(
    "--connections-file",
    envvar="SMSLEDGER_CONNECTIONS_FILE",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help=(
        "With --webhooks: the connection profiles the server runs with, as written by "
        "--webhooks --write-connections. Defaults to SMSLEDGER_CONNECTIONS_FILE."
    ),
)
@click.option(
    "--webhook-address",
    default=DEFAULT_WEBHOOK_ADDRESS,
    show_default=True,
    help=(
        "With --webhooks --write-connections: HOST:PORT of the server's webhook endpoint "
        "(its SMSLEDGER_WEBHOOK_ADDRESS); the profiles' public base URL is http://HOST:PORT."
    ),
)
@click.option(
    "--write-connections",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help=(
        "Write the connection profiles of --receipt-formats to this TOML file and exit; "
        "with --webhooks, add webhook tables with new secrets for --tenant. "
        "Start the server with SMSLEDGER_CONNECTIONS_FILE set to it."
    ),
)
def simulate_command(
    target: str,
    token: str | None,
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
    check_read_models: bool | None,
    receipt_formats: bool,
    webhooks: bool,
    connections_file: Path | None,
    webhook_address: str,
    write_connections: Path | None,
) -> None:
    """Drive a running ledger with simulated carrier traffic and check the result.

    Every message follows a scripted scenario; afterwards each message's
    state is read back with GetMessage and compared with the simulator's
    ground truth. Exits with status 1 when any state or command result
    differs from it.

    With --receipt-formats, receipts travel in real carrier formats. First
    write the connection profiles and start the server with them:

    \b
        smsledger simulate --write-connections sim-connections.toml
        SMSLEDGER_CONNECTIONS_FILE=sim-connections.toml smsledger serve

    The run is refused when the server reads a probe receipt of any
    connection differently from the simulator.

    With --webhooks, the aggregators' receipts arrive as signed callbacks on
    the server's webhook endpoint. The profiles then contain secrets, which the
    server and the simulator both read from the written file:

    \b
        smsledger simulate --webhooks --write-connections sim-hooks.toml
        export SMSLEDGER_CONNECTIONS_FILE=sim-hooks.toml
        SMSLEDGER_WEBHOOK_ADDRESS=127.0.0.1:8080 smsledger serve
        smsledger simulate --webhooks --connections-file sim-hooks.toml

    Before sending, every webhook route gets a signed callback without a
    receipt, which the endpoint must reject as empty (HTTP 400).
    """  # noqa: D301 (each \b is the backspace character that keeps click from rewrapping)
    use_token(token)
    console = output_console()
    if write_connections is not None:
        if webhooks:
            try:
                split_address(webhook_address)
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint="--webhook-address") from error
        try:
            if webhooks:
                write_webhook_connections(write_connections, tenant, webhook_address)
            else:
                write_connections_file(write_connections)
        except OSError as error:
            raise click.ClickException(
                f"cannot write connection profiles to {write_connections}: {error}"
            ) from error
        endpoint = f" SMSLEDGER_WEBHOOK_ADDRESS={webhook_address}" if webhooks else ""
        console.print(
            f"connection profiles written to {write_connections}; start the server with "
            f"SMSLEDGER_CONNECTIONS_FILE={write_connections}{endpoint}"
        )
        return
    seed = secrets.randbelow(2**31) if seed is None else seed
    run_id = run_id or secrets.token_hex(4)
    formats = FormatsMode(seed) if receipt_formats or webhooks else None
    hooks = _webhooks_mode(seed, tenant, connections_file) if webhooks else None
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
            _rewrite(formats, hooks),
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
    if hooks is not None:
        try:
            asyncio.run(hooks.check())
        except WebhookEndpointError as error:
            raise click.ClickException(str(error)) from error
        console.print(f"webhooks: {len(hooks.webhooks)} routes accept signed callbacks")
    probe = _probe_read_models(console, check_read_models, target, tenant)
    console.print(
        f"run {run_id}, seed {seed}: {messages} messages, {prepared.command_count} commands "
        f"to {target} ({'batches of ' + str(batch_size) if batch_size else 'unary'}, "
        f"concurrency {concurrency})"
    )
    try:
        result = asyncio.run(_run_with_progress(console, prepared, config, hooks))
    except ConnectionError as error:
        raise click.ClickException(str(error)) from error
    except grpc.aio.AioRpcError as error:
        raise click.ClickException(
            f"reading messages back from {target} failed: {error.code().name}: {error.details()}"
        ) from error
    _print_result(console, prepared, result)
    if hooks is not None:
        console.print(f"webhooks: {hooks.summary()}")
    if report_json is not None:
        write_json_report(
            report_json,
            result.info,
            prepared.plans,
            result.expected,
            result.rows,
            result.mismatches,
            result.stats.problems,
        )
        console.print(f"report written to {report_json}")
    read_models_failed = False
    if probe is not None and _projections_advance(
        console, check_read_models, target, tenant, probe
    ):
        check = run_check(target, tenant, result.expected)
        print_check(console, check)
        read_models_failed = check.failed
    sys.exit(1 if result.failed or read_models_failed else 0)


_PROGRESS_WAIT_SECONDS = 15.0
"""How long the read models may take to show any of the run's events before the
default check concludes that no projections run."""


def _probe_read_models(
    console: Console, wanted: bool | None, target: str, tenant: str
) -> ReadModelProbe | None:
    """Decide before sending whether the read models are checked; None when they are not.

    ``wanted`` is None by default: the check then runs when it can, and prints
    why when it cannot. With True a server that cannot be checked is an error.
    """
    if wanted is False:
        return None
    try:
        probe = run_probe(target, tenant)
    except grpc.aio.AioRpcError as error:
        probe = ReadModelProbe("absent", detail=f"{error.code().name}: {error.details()}")
    reasons = {
        "absent": f"{target} serves no read models",
        "denied": "the token may not read the read models (it needs the reader role)",
        "used": f"tenant {tenant!r} already has messages in the read models",
    }
    if probe.state == "ready":
        return probe
    reason = reasons[probe.state] + (f" ({probe.detail})" if probe.detail else "")
    if wanted is None:
        hint = "; pass a new --tenant to check them" if probe.state == "used" else ""
        console.print(f"read models not checked: {reason}{hint}")
        return None
    if probe.state == "used":
        console.print(f"[yellow]{reason}: their counts will include those messages[/]")
        return probe
    raise click.ClickException(f"--check-read-models: {reason}")


def _projections_advance(
    console: Console, wanted: bool | None, target: str, tenant: str, probe: ReadModelProbe
) -> bool:
    """Tell whether to compare: by default only when the read models follow the log."""
    if wanted:
        return True
    try:
        advanced = run_wait_for_progress(target, tenant, probe.position, _PROGRESS_WAIT_SECONDS)
    except grpc.aio.AioRpcError as error:
        console.print(f"read models not checked: {error.code().name}: {error.details()}")
        return False
    if not advanced:
        console.print(
            f"read models not checked: they showed no new event in {_PROGRESS_WAIT_SECONDS:g} s "
            "after the run (no projections run for this server's database?)"
        )
    return advanced


def _webhooks_mode(seed: int, tenant: str, connections_file: Path | None) -> WebhooksMode:
    if connections_file is None:
        raise click.UsageError(
            "--webhooks needs the server's connection profiles: pass --connections-file FILE "
            "or set SMSLEDGER_CONNECTIONS_FILE; write FILE with --webhooks --write-connections"
        )
    try:
        return WebhooksMode(seed, load_webhooks(connections_file, tenant))
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def _rewrite(
    formats: FormatsMode | None, hooks: WebhooksMode | None
) -> Callable[[list[MessagePlan]], list[MessagePlan]] | None:
    """Return the plan rewrite of the chosen modes: carrier formats first, then callbacks."""
    if formats is None:
        return None
    if hooks is None:
        return formats.rewrite

    def rewrite(plans: list[MessagePlan]) -> list[MessagePlan]:
        return hooks.rewrite(formats.rewrite(plans))

    return rewrite


async def _run_with_progress(
    console: Console, prepared: Prepared, config: DriverConfig, hooks: WebhooksMode | None
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
            callbacks=hooks.sender if hooks is not None else None,
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
