"""Publishes awaiting acknowledgement, in log order.

The window answers two questions cheaply:

- the acknowledged position: the highest log position at or below which every
  dispatched publish was acknowledged (entries are acknowledged out of order,
  so this is the position just below the oldest unacknowledged entry);
- per message, the latest publish still unacknowledged, which the next event
  of that message must wait for.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

__all__ = ["InFlight", "InFlightWindow"]


class InFlight:
    """One dispatched publish."""

    __slots__ = ("acked", "future", "message_key", "msg_id", "position", "sent_at")

    def __init__(self, position: int, message_key: str, msg_id: str) -> None:
        self.position = position
        self.message_key = message_key
        self.msg_id = msg_id
        self.acked = False
        self.sent_at = time.monotonic()
        self.future: asyncio.Future[Any] | None = None


class InFlightWindow:
    """Dispatched publishes in log order, and the acknowledged position.

    Args:
        acked_position: Position below which everything is already acknowledged.
    """

    def __init__(self, acked_position: int) -> None:
        self._entries: deque[InFlight] = deque()
        self._latest: dict[str, InFlight] = {}
        self._acked_position = acked_position
        self._dispatched_position = acked_position

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def acked_position(self) -> int:
        """Every dispatched entry at or below this position is acknowledged."""
        return self._acked_position

    @property
    def dispatched_position(self) -> int:
        """The highest position dispatched (or skipped) so far."""
        return self._dispatched_position

    def pending_for(self, message_key: str) -> InFlight | None:
        """Return the unacknowledged publish of this message, if any."""
        return self._latest.get(message_key)

    def add(self, position: int, message_key: str, msg_id: str) -> InFlight:
        """Record a sent publish; positions must increase."""
        if position <= self._dispatched_position:
            raise ValueError(
                f"position {position} is not above the last dispatched position "
                f"{self._dispatched_position}"
            )
        entry = InFlight(position, message_key, msg_id)
        self._entries.append(entry)
        self._latest[message_key] = entry
        self._dispatched_position = position
        return entry

    def skip_to(self, position: int) -> None:
        """Advance past log entries that are not published (up to ``position``)."""
        if position > self._dispatched_position:
            self._dispatched_position = position
            if not self._entries:
                self._acked_position = position

    def ack(self, entry: InFlight) -> None:
        """Mark ``entry`` acknowledged and advance the acknowledged position."""
        if entry.acked:
            return
        entry.acked = True
        if self._latest.get(entry.message_key) is entry:
            del self._latest[entry.message_key]
        entries = self._entries
        while entries and entries[0].acked:
            entries.popleft()
        self._acked_position = entries[0].position - 1 if entries else self._dispatched_position

    def oldest(self) -> InFlight | None:
        """Return the oldest unacknowledged entry."""
        return self._entries[0] if self._entries else None

    def clear(self) -> list[InFlight]:
        """Forget every unacknowledged entry and return them; the dispatch
        position falls back to the acknowledged position.
        """
        dropped = list(self._entries)
        self._entries.clear()
        self._latest.clear()
        self._dispatched_position = self._acked_position
        return dropped
