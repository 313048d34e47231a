"""Per-client limits on gRPC calls: a token bucket for the rate, a count for calls in flight.

A client is a token's name, or the peer host when authentication is off.
State is kept for at most ``max_clients`` clients; the least recently seen
idle client is forgotten first, so a flood from many peers cannot grow it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ledger.errors import ResourceExhaustedError
from ledger.webhooks.limits import TokenBucket

__all__ = ["ClientLimiter", "ClientLimits"]

# Retry delay suggested when a client has too many calls in flight: one of
# them will usually have finished by then.
_IN_FLIGHT_RETRY_SECONDS = 0.05


@dataclass(frozen=True)
class ClientLimits:
    """Limits of one client.

    Attributes:
        rate_per_second: Calls per second on average.
        burst: Calls at once above the rate.
        max_in_flight: Calls in progress at once.
    """

    rate_per_second: float
    burst: int
    max_in_flight: int


@dataclass
class _ClientState:
    bucket: TokenBucket
    in_flight: int = 0


class ClientLimiter:
    """Admits or rejects calls per client.

    Not thread-safe: the grpc.aio server calls it from its one event loop.

    Args:
        limits: The limits every client gets.
        max_clients: Clients whose state is kept at once.
        clock: Monotonic clock in seconds.
    """

    def __init__(
        self,
        limits: ClientLimits,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._max_clients = max_clients
        self._clock = clock
        self._clients: OrderedDict[str, _ClientState] = OrderedDict()

    def acquire(self, client: str) -> None:
        """Count one call of ``client`` as started.

        Raises:
            ResourceExhaustedError: The client is over its rate or in-flight
                limit; the error carries the delay after which a retry may pass.
        """
        state = self._state(client)
        if state.in_flight >= self.limits.max_in_flight:
            raise ResourceExhaustedError(
                f"client {client!r} has {state.in_flight} calls in progress, the maximum of "
                "SMSLEDGER_CLIENT_MAX_IN_FLIGHT; wait for one to finish",
                retry_after_seconds=_IN_FLIGHT_RETRY_SECONDS,
            )
        wait = state.bucket.take()
        if wait > 0:
            raise ResourceExhaustedError(
                f"client {client!r} is over its rate of {self.limits.rate_per_second:g} calls "
                "per second (SMSLEDGER_CLIENT_RATE_PER_SECOND); retry after the given delay",
                retry_after_seconds=round(wait, 3),
            )
        state.in_flight += 1

    def release(self, client: str) -> None:
        """Count one call of ``client`` as finished."""
        state = self._clients.get(client)
        if state is not None and state.in_flight > 0:
            state.in_flight -= 1

    def in_flight(self, client: str) -> int:
        """Return the calls of ``client`` in progress."""
        state = self._clients.get(client)
        return state.in_flight if state is not None else 0

    def _state(self, client: str) -> _ClientState:
        state = self._clients.get(client)
        if state is not None:
            self._clients.move_to_end(client)
            return state
        state = _ClientState(
            TokenBucket(self.limits.rate_per_second, self.limits.burst, self._clock)
        )
        self._clients[client] = state
        self._evict()
        return state

    def _evict(self) -> None:
        """Forget the least recently seen idle clients beyond ``max_clients``."""
        excess = len(self._clients) - self._max_clients
        if excess <= 0:
            return
        for name in list(self._clients):
            if excess <= 0:
                break
            if self._clients[name].in_flight == 0:
                del self._clients[name]
                excess -= 1
