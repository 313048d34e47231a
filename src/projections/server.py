"""The read models' part of a ledger server: the query service and the projector."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from ledger.runtime import Runtime
from ledger.v1 import readmodels_pb2_grpc
from projections.database import ConnectionPool, DatabaseTarget
from projections.service import ReadModelServicer
from projections.worker import ProjectionWorker, WorkerOptions

__all__ = ["ReadModels", "worker_options"]

logger = logging.getLogger(__name__)


def worker_options(runtime: Runtime) -> WorkerOptions:
    """Return the projection worker options the runtime's settings describe."""
    settings = runtime.settings
    return WorkerOptions(
        batch_size=settings.projections_batch_size,
        poll_interval_seconds=settings.projections_poll_interval_seconds,
    )


class ReadModels:
    """Serves ``ReadModelService`` and, when the settings ask, runs the projections.

    Args:
        runtime: The ledger runtime whose database holds the read models.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.target: DatabaseTarget | None = None
        self.pool: ConnectionPool | None = None
        self.worker: ProjectionWorker | None = None
        self._task: asyncio.Task[None] | None = None
        try:
            self.target = DatabaseTarget.from_env(runtime.store.config.eventsourcing_env())
        except ValueError as error:
            # An in-memory SQLite database: the server runs without read models.
            logger.warning("read models disabled: %s", error)
            return
        self.pool = ConnectionPool(self.target)
        if runtime.settings.projections_in_server:
            self.worker = ProjectionWorker(runtime.store, self.target, worker_options(runtime))

    def register(self, server: grpc.aio.Server) -> None:
        """Add the query service to ``server`` (unless the read models are disabled)."""
        if self.pool is not None:
            readmodels_pb2_grpc.add_ReadModelServiceServicer_to_server(
                ReadModelServicer(self.pool), server
            )

    async def start(self) -> None:
        """Open the query pool and start the projections."""
        if self.pool is not None:
            self.pool.open()
        if self.worker is not None:
            self._task = asyncio.create_task(self.worker.run(), name="projections")

    async def stop(self) -> None:
        """Stop the projections after their current batch and close the pool."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.pool is not None:
            await asyncio.to_thread(self.pool.close)
