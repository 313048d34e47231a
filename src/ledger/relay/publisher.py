"""Pipelined publishing in log order, with per-message order kept.

Up to ``max_in_flight`` publishes await their acknowledgement at once. Events
are dispatched in log order, except that an event waits while an earlier event
of the same message is unacknowledged. JetStream stores the messages of one
connection in the order they were sent. So once the earlier event is
acknowledged, it is in the stream ahead of the later one.

Any failure (an error acknowledgement, a lost connection, an acknowledgement
that does not come within ``publish_timeout_seconds``) cancels every pending
publish. The relay then resumes from the acknowledged position and publishes
the rest again; copies that reached the stream anyway carry the same
``Nats-Msg-Id`` and JetStream drops them within its duplicate window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import nats.errors
from nats.js.api import PubAck

from ledger.relay.config import RelayConfig
from ledger.relay.envelope import HEADER_EPOCH, HEADER_TRACEPARENT, OutboundEvent
from ledger.relay.link import NatsLink
from ledger.relay.reader import LogReader
from ledger.relay.waiter import LogWaiter
from ledger.relay.window import InFlight, InFlightWindow
from ledger.telemetry.tracing import linked_span

__all__ = ["PublishCounters", "Publisher"]

logger = logging.getLogger(__name__)

_REPAIR_CHUNK = 2000
"""Missing events read and published again per round."""


class PublishCounters:
    """Running totals of one relay process."""

    __slots__ = ("acknowledged", "duplicates", "republished")

    def __init__(self) -> None:
        self.acknowledged = 0
        self.duplicates = 0
        self.republished = 0


class Publisher:
    """Publishes the log after ``acked_position`` to JetStream.

    Args:
        link: The NATS connection.
        reader: Reads and encodes log entries.
        waiter: Wakes the publisher when the log grows.
        config: Relay configuration.
        epoch: The relay's epoch, sent in ``Ledger-Relay-Epoch``.
        acked_position: Where publishing starts (exclusive).
    """

    def __init__(
        self,
        link: NatsLink,
        reader: LogReader,
        waiter: LogWaiter,
        config: RelayConfig,
        *,
        epoch: int,
        acked_position: int,
    ) -> None:
        self.link = link
        self.reader = reader
        self.waiter = waiter
        self.config = config
        self.window = InFlightWindow(acked_position)
        self.counters = PublishCounters()
        self.failure: str | None = None
        self.coverage_from = acked_position
        self.barrier = acked_position
        self.acks: list[tuple[int, int, str]] = []
        self._epoch = str(epoch)
        self._generation = 0
        self._repair: tuple[int, ...] = ()
        self._wake = asyncio.Event()

    # ------------------------------------------------------------- failures

    def fail(self, reason: str) -> None:
        """Stop publishing and cancel every pending publish; :meth:`pump` returns."""
        if self.failure is None:
            self.failure = reason
        # Copies sent before now may still be stored after the reconnect, out of
        # log order. The stream check trusts acknowledgement order again only
        # once the acknowledged position has passed them.
        self.barrier = max(self.barrier, self.window.dispatched_position)
        self._generation += 1
        for entry in self.window.clear():
            if entry.future is not None and not entry.future.done():
                entry.future.cancel()
        self._wake.set()
        self.waiter.wake()

    def reset(self) -> None:
        """Clear a failure so that :meth:`pump` can run again from the acknowledged position."""
        self.failure = None
        self._wake.clear()

    def check_timeout(self) -> None:
        """Fail when the oldest publish has waited longer than the publish timeout."""
        oldest = self.window.oldest()
        if oldest is None or oldest.acked:
            return
        waited = time.monotonic() - oldest.sent_at
        if waited > self.config.publish_timeout_seconds:
            self.fail(
                f"no acknowledgement for position {oldest.position} within "
                f"{self.config.publish_timeout_seconds:g} s"
            )

    def raise_barrier(self, position: int) -> None:
        """Note that messages up to ``position`` may be stored out of log order."""
        self.barrier = max(self.barrier, position)

    def prune_acks(self, verified_position: int) -> None:
        """Forget acknowledgements at or below a verified position."""
        self.acks = [ack for ack in self.acks if ack[0] > verified_position]

    def request_repair(self, positions: Sequence[int]) -> None:
        """Publish these positions again at the next batch boundary."""
        self._repair = tuple(sorted(set(self._repair) | set(positions)))
        self.waiter.wake()

    # ----------------------------------------------------------- publishing

    def _on_ack(self, entry: InFlight, generation: int, future: asyncio.Future[PubAck]) -> None:
        if generation != self._generation or future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.fail(f"publish of position {entry.position} failed: {error!r}")
            return
        ack = future.result()
        if ack.stream != self.config.stream:
            self.fail(
                f"subject of position {entry.position} is stored by stream {ack.stream!r}, not "
                f"{self.config.stream!r}; give each stream its own subject prefix"
            )
            return
        self.window.ack(entry)
        self.acks.append((entry.position, ack.seq, entry.msg_id))
        self.counters.acknowledged += 1
        if ack.duplicate:
            self.counters.duplicates += 1

    async def _send(self, event: OutboundEvent) -> asyncio.Future[PubAck] | None:
        event.headers[HEADER_EPOCH] = self._epoch
        try:
            # No wait_stall: with it every call yields to the event loop, which
            # then writes each message with its own system call. A stalled
            # window is detected by check_timeout, whose fail() cancels the
            # pending futures and so frees their slots.
            future: asyncio.Future[PubAck] = await self.link.js.publish_async(
                event.subject, event.payload, headers=event.headers
            )
        except (nats.errors.Error, OSError) as error:
            self.fail(f"publish of position {event.position} failed: {error!r}")
            return None
        return future

    async def _dispatch(self, event: OutboundEvent) -> None:
        earlier = self.window.pending_for(event.aggregate_id)
        if earlier is not None and earlier.future is not None:
            # Per-message order: the previous event of this message must be
            # acknowledged (stored) before this one is sent.
            if not earlier.future.done():
                await asyncio.wait([earlier.future])
            if earlier.future.cancelled() or earlier.future.exception() is not None:
                self.fail(f"publish of position {earlier.position} failed")
        if self.failure is not None:
            return
        generation = self._generation
        future = await self._send(event)
        if future is None:
            return
        if generation != self._generation:
            # A failure cleared the window while this publish waited for a slot.
            future.cancel()
            return
        entry = self.window.add(event.position, event.aggregate_id, event.event_id)
        entry.future = future
        future.add_done_callback(partial(self._on_ack, entry, generation))

    async def pump(self, stopping: asyncio.Event) -> None:
        """Publish the log as it grows until a failure or ``stopping`` is set."""
        after = self.window.acked_position
        ahead: asyncio.Task[Any] | None = None
        try:
            while not stopping.is_set() and self.failure is None:
                if self._repair:
                    await self._run_repair()
                    continue
                if ahead is None:
                    self.waiter.arm()
                    ahead = asyncio.create_task(self.reader.read(after, self.config.batch_size))
                batch = await ahead
                ahead = None
                if batch.through <= after:
                    await self.waiter.wait(self.config.poll_interval_seconds)
                    continue
                # Read the next batch while this one is published.
                self.waiter.arm()
                ahead = asyncio.create_task(self.reader.read(batch.through, self.config.batch_size))
                with linked_span(
                    "relay publish",
                    (event.headers.get(HEADER_TRACEPARENT) for event in batch.events),
                    {
                        "messaging.system": "nats",
                        "messaging.destination.name": self.config.stream,
                        "messaging.batch.message_count": len(batch.events),
                    },
                ):
                    for event in batch.events:
                        await self._dispatch(event)
                        if self.failure is not None:
                            return
                self.window.skip_to(batch.through)
                after = batch.through
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead

    async def drain(self, timeout: float) -> bool:
        """Wait until every pending publish is acknowledged; False on failure or timeout."""
        deadline = time.monotonic() + timeout
        while len(self.window) and self.failure is None:
            if time.monotonic() > deadline:
                return False
            oldest = self.window.oldest()
            if oldest is not None and oldest.future is not None:
                await asyncio.wait([oldest.future], timeout=max(deadline - time.monotonic(), 0))
        return self.failure is None

    # --------------------------------------------------------------- repair

    async def _run_repair(self) -> None:
        positions, self._repair = self._repair, ()
        if not await self.drain(self.config.publish_timeout_seconds):
            self._repair = tuple(sorted(set(self._repair) | set(positions)))
            return
        for start in range(0, len(positions), _REPAIR_CHUNK):
            events = await self.reader.read_positions(positions[start : start + _REPAIR_CHUNK])
            if not await self._publish_set(events):
                # Keep what is left for the next attempt.
                self._repair = tuple(sorted(set(self._repair) | set(positions[start:])))
                return
            self.counters.republished += len(events)

    async def _publish_set(self, events: Sequence[OutboundEvent]) -> bool:
        """Publish events outside the window (older than it), pipelined, per-message ordered."""
        latest: dict[str, asyncio.Future[PubAck]] = {}
        futures: list[asyncio.Future[PubAck]] = []
        generation = self._generation
        for event in events:
            earlier = latest.get(event.aggregate_id)
            if earlier is not None:
                await asyncio.wait([earlier])
                if earlier.cancelled() or earlier.exception() is not None:
                    break
            future = await self._send(event)
            if future is None or generation != self._generation:
                break
            latest[event.aggregate_id] = future
            futures.append(future)
        done, pending = (
            await asyncio.wait(futures, timeout=self.config.publish_timeout_seconds)
            if futures
            else (set(), set())
        )
        for future in pending:
            future.cancel()
        failed = [f for f in done if f.cancelled() or f.exception() is not None]
        if pending or failed or len(futures) < len(events):
            error = next((f.exception() for f in failed if not f.cancelled()), None)
            self.fail(
                f"publishing missing events again failed: {error!r}"
                if error
                else "publishing missing events again timed out"
            )
            return False
        return True
