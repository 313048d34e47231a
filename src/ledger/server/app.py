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

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ledger.application.committer import GroupCommitter
from ledger.runtime import Runtime
from ledger.server.receipts import ReceiptServicer
from ledger.server.service import LedgerServicer
from ledger.server.sweeper import ExpirySweeper
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

__all__ = ["LedgerServer", "create_server", "serve"]

logger = logging.getLogger(__name__)

SERVICE_NAME = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
RECEIPT_SERVICE_NAME = ledger_pb2.DESCRIPTOR.services_by_name["ReceiptService"].full_name


@dataclass
class LedgerServer:
    """A gRPC server with the ledger's services, and what it runs beside them."""

    server: grpc.aio.Server
    port: int
    committer: GroupCommitter
    health: health.aio.HealthServicer
    sweeper: ExpirySweeper
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Start serving, committing and sweeping."""
        await self.committer.start()
        await self.server.start()
        self.background.append(asyncio.create_task(self.sweeper.run(), name="expiry-sweeper"))
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Stop accepting RPCs, let in-flight ones finish, commit what is queued."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for task in self.background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.committer.stop()


async def create_server(runtime: Runtime, address: str | None = None) -> LedgerServer:
    """Build the server for ``runtime``, bound to ``address`` (port 0 picks a free port).

    Must be called on the event loop that will run the server.
    """
    settings = runtime.settings
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
            ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.http2.max_pings_without_data", 0),
        ],
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
    )
    committer = GroupCommitter(
        runtime.ledger,
        max_batch=settings.commit_max_batch,
        max_queued=settings.commit_max_queued,
    )
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(
        LedgerServicer(runtime.ledger, committer, settings.batch_max_commands), server
    )
    ledger_pb2_grpc.add_ReceiptServiceServicer_to_server(
        ReceiptServicer(runtime.ledger, committer), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, RECEIPT_SERVICE_NAME, reflection.SERVICE_NAME, health.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(address or settings.grpc_address)
    if port == 0:
        raise OSError(f"cannot listen on {address or settings.grpc_address}")
    sweeper = ExpirySweeper(
        runtime.ledger, committer, interval_seconds=settings.expiry_sweep_interval_seconds
    )
    return LedgerServer(server, port, committer, health_servicer, sweeper)


async def serve(runtime: Runtime) -> None:
    """Run the server until SIGTERM or SIGINT, then shut down gracefully."""
    ledger_server = await create_server(runtime)
    await ledger_server.start()
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
    logger.info("ledger stopped")
