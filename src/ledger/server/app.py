"""Building, running and stopping the gRPC server.

:func:`create_server` returns a started-but-not-serving pair (server, port) so
that tests bind port 0 and talk to it over a real channel; :func:`serve` runs
it until SIGTERM or SIGINT and then shuts down gracefully: health turns
NOT_SERVING, in-flight RPCs get ``shutdown_grace_seconds`` to finish, queued
commands are committed, and the database pool is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer
from grpc_reflection.v1alpha import reflection

from ledger.application.committer import GroupCommitter
from ledger.checkpoints import load_private_key
from ledger.privacy.erasure import Eraser
from ledger.privacy.erasure_log import ErasureLog
from ledger.relay.embedded import EmbeddedRelay, embedded_relay
from ledger.runtime import Runtime
from ledger.security import security_interceptor
from ledger.security.admin import AdminServicer
from ledger.security.tls import server_credentials
from ledger.server.checkpointer import Checkpointer
from ledger.server.receipts import ReceiptServicer
from ledger.server.service import LedgerServicer
from ledger.server.sweeper import ExpirySweeper
from ledger.telemetry import Telemetry
from ledger.v1 import ledger_pb2, ledger_pb2_grpc
from ledger.webhooks.server import WebhookServer, create_webhook_server
from ledger.webhooks.stuck_service import SERVICE_NAME as RECONCILIATION_SERVICE_NAME
from ledger.webhooks.stuck_service import ReconciliationServicer, stuck_gauge
from projections.server import ReadModels
from projections.service import SERVICE_NAME as READ_MODEL_SERVICE_NAME

__all__ = ["LedgerServer", "create_server", "serve"]

logger = logging.getLogger(__name__)

SERVICE_NAME = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
RECEIPT_SERVICE_NAME = ledger_pb2.DESCRIPTOR.services_by_name["ReceiptService"].full_name
ADMIN_SERVICE_NAME = ledger_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


@dataclass
class LedgerServer:
    """A gRPC server with the ledger's services, and what it runs beside them."""

    server: grpc.aio.Server
    port: int
    committer: GroupCommitter
    health: AsyncHealthServicer
    sweeper: ExpirySweeper
    read_models: ReadModels | None = None
    relay: EmbeddedRelay | None = None
    telemetry: Telemetry | None = None
    webhooks: WebhookServer | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Start serving, committing and sweeping."""
        await self.committer.start()
        await self.server.start()
        self.background.append(asyncio.create_task(self.sweeper.run(), name="expiry-sweeper"))
        if self.read_models is not None:
            await self.read_models.start()
        if self.relay is not None:
            await self.relay.start()
        if self.telemetry is not None:
            await self.telemetry.start()
        if self.webhooks is not None:
            await self.webhooks.start()
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Stop accepting RPCs, let in-flight ones finish, commit what is queued."""
        await self.health.enter_graceful_shutdown()
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.server.stop(grace)
        for task in self.background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.read_models is not None:
            await self.read_models.stop()
        await self.committer.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.telemetry is not None:
            await self.telemetry.stop()


async def create_server(
    runtime: Runtime,
    address: str | None = None,
    telemetry: Telemetry | None = None,
    webhook_address: str | None = None,
) -> LedgerServer:
    """Build the server for ``runtime``, bound to ``address`` (port 0 picks a free port).

    The webhook endpoint listens on ``webhook_address`` (default
    ``SMSLEDGER_WEBHOOK_ADDRESS``) when a connection has a webhook profile,
    and shares the group commit with the gRPC services.

    With ``telemetry``, every RPC and webhook request gets a span and metrics,
    every group-commit batch a span linked to its commands' request spans, and
    the server's parts export their metrics, the stuck-message count among
    them. Must be called on the event loop that will run the server.
    """
    settings = runtime.settings
    # Telemetry wraps the security checks, so that denied calls are traced and counted.
    interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = [
        *(telemetry.server_interceptors() if telemetry is not None else []),
        security_interceptor(settings),
    ]
    credentials = server_credentials(settings)
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
            ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.http2.max_pings_without_data", 0),
            # gRPC sets SO_REUSEPORT by default, so unless asked for, a second
            # server on a port in use would start and silently take half of the calls.
            ("grpc.so_reuseport", int(settings.grpc_reuse_port)),
        ],
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
    )
    committer = GroupCommitter(
        runtime.ledger,
        max_batch=settings.commit_max_batch,
        max_queued=settings.commit_max_queued,
        on_batch=telemetry.metrics.record_batch if telemetry is not None else None,
        trace_context=telemetry.trace_context if telemetry is not None else None,
        around_batch=telemetry.around_batch if telemetry is not None else None,
    )
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(
        LedgerServicer(runtime.ledger, committer, settings.batch_max_commands), server
    )
    ledger_pb2_grpc.add_ReceiptServiceServicer_to_server(
        ReceiptServicer(runtime.ledger, committer), server
    )
    ledger_pb2_grpc.add_ReconciliationServiceServicer_to_server(
        ReconciliationServicer(runtime.store, runtime.connections, settings.stuck_after_seconds),
        server,
    )
    erasure_log = ErasureLog(settings.erasure_log_file) if settings.erasure_log_file else None
    ledger_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminServicer(Eraser(runtime.ledger, erasure_log)), server
    )
    # Read models: list and statistics queries, and the projections when enabled.
    read_models = ReadModels(runtime)
    read_models.register(server)
    health_servicer = AsyncHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            RECEIPT_SERVICE_NAME,
            READ_MODEL_SERVICE_NAME,
            RECONCILIATION_SERVICE_NAME,
            ADMIN_SERVICE_NAME,
            reflection.SERVICE_NAME,
            health.SERVICE_NAME,
        ),
        server,
    )
    # With a certificate configured the one port speaks TLS only.
    if credentials is not None:
        port = server.add_secure_port(address or settings.grpc_address, credentials)
    else:
        port = server.add_insecure_port(address or settings.grpc_address)
    if port == 0:
        raise OSError(f"cannot listen on {address or settings.grpc_address}")
    sweeper = ExpirySweeper(
        runtime.ledger, committer, interval_seconds=settings.expiry_sweep_interval_seconds
    )
    relay = embedded_relay(runtime)
    webhooks = create_webhook_server(runtime, committer, webhook_address)
    if telemetry is not None:
        telemetry.watch_server(
            settings,
            runtime.store,
            committer,
            relay=relay.relay if relay is not None else None,
            projection_worker=read_models.worker,
            webhooks=webhooks.handler.metrics if webhooks is not None else None,
            stuck=stuck_gauge(runtime.store, runtime.connections, settings.stuck_after_seconds),
            connections=tuple(runtime.connections),
        )
        if webhooks is not None:
            webhooks.middlewares.append(
                telemetry.webhook_middleware(tuple(webhooks.handler.routes))
            )
    return LedgerServer(
        server,
        port,
        committer,
        health_servicer,
        sweeper,
        read_models,
        relay=relay,
        telemetry=telemetry,
        webhooks=webhooks,
    )


async def serve(runtime: Runtime) -> None:
    """Run the server until SIGTERM or SIGINT, then shut down gracefully."""
    settings = runtime.settings
    telemetry = Telemetry.from_settings(settings, "smsledger-server")
    telemetry.activate()
    if settings.metrics_address:
        try:
            telemetry.start_metrics_server(settings.metrics_address)
        except OSError as error:
            # Reported without a traceback: the message names the setting.
            logger.error("cannot serve metrics: %s", error)
            raise SystemExit(2) from error
    ledger_server = await create_server(runtime, telemetry=telemetry)
    await ledger_server.start()
    if settings.checkpoint_key is not None and settings.checkpoint_file is not None:
        checkpointer = Checkpointer(
            runtime.store,
            load_private_key(settings.checkpoint_key.get_secret_value()),
            settings.checkpoint_file,
            settings.checkpoint_interval_seconds,
        )
        ledger_server.background.append(
            asyncio.create_task(checkpointer.run(), name="checkpointer")
        )
    logger.info(
        "ledger serving",
        extra={"address": runtime.settings.grpc_address, "port": ledger_server.port},
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    logger.info("ledger stopping", extra={"grace_seconds": runtime.settings.shutdown_grace_seconds})
    await ledger_server.stop(runtime.settings.shutdown_grace_seconds)
    runtime.close()
    telemetry.shutdown()
    logger.info("ledger stopped")
