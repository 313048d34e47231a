"""``smsledger relay``: publish the ledger's log to NATS JetStream, or show its progress."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from ledger.cli.common import check_database_exists, remember_database, tune_garbage_collector
from ledger.errors import LedgerError
from ledger.logs import configure_logging
from ledger.relay import Relay, read_relay_status, relay_config
from ledger.relay.database import FencedError
from ledger.runtime import storage_config
from ledger.settings import ConfigurationError, Settings, load_settings
from ledger.storage.store import LedgerStore
from ledger.telemetry import Telemetry

__all__ = ["relay_command"]

logger = logging.getLogger(__name__)


def _load(database_url: str | None, nats_url: str | None, stream: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    if nats_url:
        overrides["nats_url"] = nats_url
    if stream:
        overrides["nats_stream"] = stream
    try:
        return load_settings(**overrides)
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from error


def _open_store(settings: Settings, *, create_tables: bool) -> LedgerStore:
    url = settings.resolved_database_url
    if not create_tables:
        check_database_exists(url)
    remember_database(url)
    try:
        return LedgerStore(storage_config(settings, create_tables=create_tables))
    except (LedgerError, ValueError) as error:
        raise click.ClickException(str(error)) from error


_NATS_TIMEOUT_SECONDS = 2.0
"""Bound on each NATS connect attempt and on the stream info request of ``--status``."""

_NATS_DEADLINE_SECONDS = 6.0
"""Bound on the whole NATS part of ``--status``: two connect tries and the request."""


def _masked_servers(settings: Settings) -> str:
    """Return the NATS URLs with their passwords masked, for messages."""
    masked = []
    for server in settings.nats_servers:
        parsed = urlsplit(server)
        if parsed.password is not None:
            netloc = f"{parsed.username}:***@{parsed.hostname}"
            if parsed.port is not None:
                netloc += f":{parsed.port}"
            server = urlunsplit(parsed._replace(netloc=netloc))
        masked.append(server)
    return ",".join(masked)


async def _stream_state(settings: Settings) -> dict[str, Any]:
    """Return the stream's size, or ``{"error": ...}``, within ``_NATS_DEADLINE_SECONDS``.

    nats-py's first connect keeps retrying a refused server (60 times, 2 s
    apart, by default) even without reconnects, so at most two quick tries
    per server are allowed and the whole exchange is bounded as well.
    """
    import nats

    url = _masked_servers(settings)
    failures: list[BaseException] = []

    async def remember(error: Exception) -> None:
        # nats-py's default callback logs each failed try; the last one is reported instead.
        failures.append(error)

    async def query() -> dict[str, Any]:
        client = await nats.connect(
            servers=list(settings.nats_servers),
            connect_timeout=_NATS_TIMEOUT_SECONDS,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            error_cb=remember,
        )
        try:
            info = await client.jetstream(timeout=_NATS_TIMEOUT_SECONDS).stream_info(
                settings.nats_stream
            )
        except nats.errors.Error as error:
            return {"error": f"stream info failed: {error or type(error).__name__}"}
        finally:
            await client.close()
        return {"messages": info.state.messages, "last_sequence": info.state.last_seq}

    try:
        async with asyncio.timeout(_NATS_DEADLINE_SECONDS):
            return await query()
    except (OSError, nats.errors.Error, TimeoutError) as error:
        cause = failures[-1] if failures else error
        if isinstance(cause, TimeoutError):
            reason = "timed out"
        else:
            reason = str(cause) or type(cause).__name__
        return {"error": f"NATS unreachable at {url}: {reason}"}


def _print_status(settings: Settings, as_json: bool) -> None:
    store = _open_store(settings, create_tables=False)
    try:
        status = read_relay_status(store, settings.nats_stream)
    finally:
        store.close()
    report: dict[str, Any] = {
        "stream": status.stream,
        "log_position": status.log_position,
        "acked_position": status.acked_position,
        "lag": status.lag,
        "verified_position": status.verified_position,
        "epoch": status.epoch,
        "owner": status.owner,
        "heartbeat_at": status.heartbeat_at.isoformat() if status.heartbeat_at else None,
    }
    if as_json:
        if settings.nats_servers:
            report["nats"] = asyncio.run(_stream_state(settings))
        click.echo(json.dumps(report))
        return
    # The database's part first, because NATS may take seconds to respond.
    for key, value in report.items():
        click.echo(f"{key}: {value}")
    if settings.nats_servers:
        state = asyncio.run(_stream_state(settings))
        if "error" in state:
            click.echo(state["error"])
        else:
            click.echo(
                f"stream messages: {state['messages']}, last sequence: {state['last_sequence']}"
            )


async def _run(relay: Relay, settings: Settings) -> None:
    telemetry = Telemetry.from_settings(settings, "smsledger-relay")
    telemetry.watch_relay(relay)
    telemetry.watch_database(
        relay.store, relay_stream=relay.config.stream, projections=False, orphan_age_seconds=None
    )
    await telemetry.start_process(settings.metrics_address)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(relay.stop()))
    try:
        await relay.run()
    finally:
        await telemetry.close()


@click.command("relay")
@click.option("--database-url", help="Overrides SMSLEDGER_DATABASE_URL.")
@click.option("--nats-url", help="Overrides SMSLEDGER_NATS_URL, such as nats://127.0.0.1:4222.")
@click.option("--stream", help="Overrides SMSLEDGER_NATS_STREAM.")
@click.option(
    "--status",
    "show_status",
    is_flag=True,
    help="Print the stored progress and lag, and the stream's size when NATS is reachable, "
    "then exit.",
)
@click.option("--json", "as_json", is_flag=True, help="With --status: print one JSON object.")
def relay_command(
    database_url: str | None,
    nats_url: str | None,
    stream: str | None,
    show_status: bool,
    as_json: bool,
) -> None:
    """Publish every lifecycle event of the log to NATS JetStream until SIGTERM or Ctrl-C.

    On PostgreSQL several relays may run: one publishes, the others stand by
    and take over when it stops.
    """
    settings = _load(database_url, nats_url, stream)
    if show_status:
        _print_status(settings, as_json)
        return
    try:
        config = relay_config(settings)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    configure_logging(settings.log_format, settings.log_level)
    store = _open_store(settings, create_tables=settings.create_tables)
    tune_garbage_collector()
    try:
        asyncio.run(_run(Relay(store, config), settings))
    except FencedError as error:
        raise click.ClickException(
            f"another relay took over stream {config.stream}: {error}; run one relay per "
            "SQLite database"
        ) from error
    finally:
        store.close()
