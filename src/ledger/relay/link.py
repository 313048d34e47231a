"""The relay's NATS connection: connect with backoff, reconnect, log state changes.

nats-py reconnects on its own once connected; only the first connection
needs retrying here. Each change between connected and disconnected is
logged once, however many reconnect attempts fail in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

__all__ = ["NatsLink"]

logger = logging.getLogger(__name__)


class NatsLink:
    """A NATS connection and its JetStream context, kept open across outages.

    Args:
        servers: Server URLs.
        max_pending: Most JetStream publishes awaiting acknowledgement.
        name: Client name shown by the server.
    """

    def __init__(
        self, servers: tuple[str, ...], *, max_pending: int, name: str = "smsledger-relay"
    ) -> None:
        self.servers = servers
        self.max_pending = max_pending
        self.name = name
        self.connected = asyncio.Event()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._on_disconnect: list[Callable[[], None]] = []
        self._last_error: str = ""
        self._closing = False

    @property
    def nc(self) -> Client:
        """The connected client."""
        if self._nc is None:
            raise RuntimeError("NATS is not connected yet: await NatsLink.connect() first")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context."""
        if self._js is None:
            raise RuntimeError("NATS is not connected yet: await NatsLink.connect() first")
        return self._js

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the connection drops."""
        self._on_disconnect.append(callback)

    async def _disconnected(self) -> None:
        if self._closing:
            return
        if self.connected.is_set():
            logger.warning("NATS connection lost; reconnecting", extra={"servers": self.servers})
        self.connected.clear()
        for callback in self._on_disconnect:
            callback()

    async def _reconnected(self) -> None:
        logger.info("NATS connection restored", extra={"servers": self.servers})
        self.connected.set()

    async def _error(self, error: Exception) -> None:
        # Called for every failed reconnect attempt: keep the latest for the
        # state-change messages instead of logging each one.
        self._last_error = str(error) or type(error).__name__
        logger.debug("NATS client error: %s", self._last_error)

    async def connect(self) -> None:
        """Connect, retrying with backoff until a server accepts the connection."""
        failures = 0

        def note_failure(state: object) -> None:
            nonlocal failures
            failures += 1
            if failures == 1:
                error = getattr(getattr(state, "outcome", None), "exception", lambda: None)()
                logger.warning(
                    "cannot connect to NATS; retrying with backoff",
                    extra={"servers": self.servers, "error": str(error)},
                )

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((OSError, nats.errors.Error, asyncio.TimeoutError)),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            before_sleep=note_failure,
            reraise=True,
        ):
            with attempt:
                self._nc = await nats.connect(
                    servers=list(self.servers),
                    name=self.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    ping_interval=5,
                    max_outstanding_pings=3,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
        self._js = self.nc.jetstream(timeout=5.0, publish_async_max_pending=self.max_pending)
        self.connected.set()
        if failures:
            logger.info(
                "connected to NATS", extra={"servers": self.servers, "attempts": failures + 1}
            )
        else:
            logger.info("connected to NATS", extra={"servers": self.servers})

    async def close(self) -> None:
        """Close the connection without waiting for pending acknowledgements."""
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        self.connected.clear()
