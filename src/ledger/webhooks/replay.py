"""Replay protection: nonces remembered with the body they arrived with.

A provider may legitimately send the same callback twice (its retry after a
lost response), and then the same nonce comes with the same body. An attacker
replaying a captured nonce and signature with another body, which Plivo's V2
scheme cannot detect on its own, is refused.

A nonce is remembered as recorded only after its callback was committed. A
callback whose write failed releases its nonce, so the provider's retry is not
taken for a replay. The cache lives in one process: a replay sent to another
node is still caught by the ledger's duplicate detection when the body is the
same, but not when it differs.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Claim", "ReplayCache"]


class Claim(enum.Enum):
    """Result of :meth:`ReplayCache.claim`."""

    FRESH = "fresh"
    """Not seen in the window; the nonce is now claimed by the caller."""
    RECORDED = "recorded"
    """Seen with the same body and already committed."""
    IN_FLIGHT = "in_flight"
    """Seen with the same body; that callback is still being recorded."""
    CONFLICT = "conflict"
    """Seen with another body: a replay."""


@dataclass
class _Entry:
    digest: bytes
    recorded: bool
    expires_at: float


class ReplayCache:
    """Nonces of recent callbacks, bounded in age and number.

    Args:
        window_seconds: How long a nonce is remembered after its callback.
        max_entries: Most nonces kept; the oldest are forgotten first.
        clock: Monotonic clock in seconds.
    """

    def __init__(
        self,
        window_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, key: str, digest: bytes) -> Claim:
        """Look ``key`` up and, when it is new, hold it for the caller."""
        now = self._clock()
        self._evict(now)
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at > now:
            if entry.digest != digest:
                return Claim.CONFLICT
            return Claim.RECORDED if entry.recorded else Claim.IN_FLIGHT
        self._entries[key] = _Entry(digest, False, now + self.window_seconds)
        self._entries.move_to_end(key)
        return Claim.FRESH

    def complete(self, key: str) -> None:
        """Mark a held nonce as recorded; it is remembered for the window from now."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.recorded = True
            entry.expires_at = self._clock() + self.window_seconds
            self._entries.move_to_end(key)

    def release(self, key: str) -> None:
        """Forget a held nonce whose callback was not recorded."""
        entry = self._entries.get(key)
        if entry is not None and not entry.recorded:
            del self._entries[key]

    def _evict(self, now: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.expires_at > now and len(self._entries) < self.max_entries:
                break
            self._entries.popitem(last=False)
