"""Counters of the webhook endpoint, ready to be exported as metrics.

:class:`WebhookMetrics` counts every callback by connection and outcome. A
metrics exporter reads :meth:`WebhookMetrics.snapshot` (or registers an
observable counter over it); nothing here depends on a metrics library.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["OUTCOMES", "WebhookMetrics"]

OUTCOMES = (
    "recorded",
    "duplicate",
    "parked",
    "unparsed",
    "replayed",
    "subscription_confirmed",
    "rejected_signature",
    "rejected_request",
    "too_large",
    "rate_limited",
    "timed_out",
    "unavailable",
    "not_recorded",
)
"""Outcomes counted; ``rejected_signature`` covers every failed authentication."""


class WebhookMetrics:
    """Callback counts by (connection, outcome), plus log throttling.

    Args:
        log_interval_seconds: Shortest time between two log lines for the same
            connection and outcome; repeats in between are counted and reported
            with the next line.
        clock: Monotonic clock in seconds.
    """

    def __init__(
        self, log_interval_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.log_interval_seconds = log_interval_seconds
        self._clock = clock
        self._last_logged: dict[tuple[str, str], float] = {}
        self._suppressed: Counter[tuple[str, str]] = Counter()

    def count(self, connection: str, outcome: str) -> None:
        """Add one callback with ``outcome`` on ``connection``."""
        self.counts[(connection, outcome)] += 1

    def total(self, outcome: str) -> int:
        """Return the count of ``outcome`` over all connections."""
        return sum(n for (_, name), n in self.counts.items() if name == outcome)

    def snapshot(self) -> dict[tuple[str, str], int]:
        """Return a copy of every count, keyed by (connection, outcome)."""
        return dict(self.counts)

    def should_log(self, connection: str, outcome: str) -> int | None:
        """Return how many lines were suppressed when a line may be logged now, else None."""
        key = (connection, outcome)
        now = self._clock()
        last = self._last_logged.get(key)
        if last is not None and now - last < self.log_interval_seconds:
            self._suppressed[key] += 1
            return None
        self._last_logged[key] = now
        return self._suppressed.pop(key, 0)

    def log(
        self,
        logger: logging.Logger,
        level: int,
        message: str,
        connection: str,
        outcome: str,
        **extra: object,
    ) -> None:
        """Log ``message`` unless the same connection and outcome were logged recently."""
        suppressed = self.should_log(connection, outcome)
        if suppressed is None:
            return
        logger.log(
            level,
            "%s (%d similar lines suppressed)",
            message,
            suppressed,
            extra={"connection": connection, "outcome": outcome, **extra},
        )
