"""Delivery ratio per carrier over a sliding time window, in fixed-size time buckets."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SlidingRatio"]


@dataclass
class _Bucket:
    start: float
    delivered: int = 0
    total: int = 0


class SlidingRatio:
    """Counts delivered and final receipts per carrier over the last ``window_seconds``.

    Memory is one bucket per ``bucket_seconds`` per carrier, whatever the
    rate; the window therefore moves in steps of ``bucket_seconds``, and a
    ratio covers between ``window_seconds - bucket_seconds`` and
    ``window_seconds`` of history. Thread-safe.

    Args:
        window_seconds: Length of the window.
        bucket_seconds: Time granularity of the window.
        clock: Returns the current time in seconds (monotonic).
    """

    def __init__(
        self,
        window_seconds: float,
        bucket_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_seconds <= 0 or bucket_seconds <= 0:
            raise ValueError(
                f"window {window_seconds} s and bucket {bucket_seconds} s must both be positive"
            )
        self.window_seconds = window_seconds
        self.bucket_seconds = min(bucket_seconds, window_seconds)
        self._clock = clock
        self._carriers: dict[str, deque[_Bucket]] = {}
        self._lock = threading.Lock()

    def add(self, carrier: str, delivered: bool) -> None:
        """Count one final receipt of ``carrier``."""
        now = self._clock()
        start = now - now % self.bucket_seconds
        with self._lock:
            buckets = self._carriers.setdefault(carrier, deque())
            if not buckets or buckets[-1].start != start:
                buckets.append(_Bucket(start))
            bucket = buckets[-1]
            bucket.total += 1
            if delivered:
                bucket.delivered += 1

    def ratios(self) -> dict[str, tuple[float, int]]:
        """Return ``(delivered / total, total)`` per carrier with outcomes in the window."""
        cutoff = self._clock() - self.window_seconds
        result: dict[str, tuple[float, int]] = {}
        with self._lock:
            for carrier in list(self._carriers):
                buckets = self._carriers[carrier]
                while buckets and buckets[0].start + self.bucket_seconds <= cutoff:
                    buckets.popleft()
                if not buckets:
                    del self._carriers[carrier]
                    continue
                total = sum(b.total for b in buckets)
                delivered = sum(b.delivered for b in buckets)
                result[carrier] = (delivered / total, total)
        return result
