"""Running the relay inside ``smsledger serve`` when ``SMSLEDGER_NATS_URL`` is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ledger.relay.config import relay_config
from ledger.relay.database import FencedError
from ledger.relay.relay import Relay
from ledger.runtime import Runtime

__all__ = ["EmbeddedRelay", "embedded_relay"]

logger = logging.getLogger(__name__)


class EmbeddedRelay:
    """A relay running as a task of the server's event loop.

    Writes do not wait for it: the server commits to the log, and the relay
    publishes from the log, so a NATS outage only delays publication.
    """

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the relay task."""
        self._task = asyncio.create_task(self._run(), name="relay")

    async def _run(self) -> None:
        try:
            await self.relay.run()
        except FencedError as error:
            logger.error(
                "relay stopped: another relay took over the stream",
                extra={"stream": self.relay.config.stream, "error": str(error)},
            )

    async def stop(self) -> None:
        """Stop the relay after it stores its acknowledged position."""
        if self._task is None:
            return
        await self.relay.stop()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=10.0)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None


def embedded_relay(runtime: Runtime) -> EmbeddedRelay | None:
    """Return the relay the server runs, or None when no NATS URL is configured."""
    if not runtime.settings.nats_servers:
        return None
    return EmbeddedRelay(Relay(runtime.store, relay_config(runtime.settings)))
