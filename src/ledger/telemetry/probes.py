"""Gauges read from the database: relay lag, projection lag, orphaned receipts.

Any ledger process can compute them, because the relay and the projections
store their positions beside the log. A :class:`Poller` refreshes them on a
worker thread every ``interval_seconds`` and keeps the last values, so a
scrape never waits on the database. A failed read keeps the previous value
and counts in ``ledger_metrics_probe_errors_total``; it is logged once until
the probe succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from ledger.storage.store import LedgerStore
from ledger.telemetry.metrics import GaugeValues

__all__ = ["Poller", "Probe", "count_orphans", "projection_lags", "relay_lags"]

logger = logging.getLogger(__name__)


@dataclass
class Probe:
    """One database read that refreshes a gauge.

    Attributes:
        name: Label value of ``ledger_metrics_probe_errors_total``.
        read: Returns ``(labels, value)`` pairs; runs on a worker thread.
        values: The gauge's stored values.
    """

    name: str
    read: Callable[[], list[tuple[dict[str, str], float]]]
    values: GaugeValues = field(default_factory=GaugeValues)
    failing: bool = False


class Poller:
    """Runs probes periodically on a worker thread.

    Args:
        interval_seconds: Pause between two rounds.
        on_error: Called with the probe name after a failed read.
    """

    def __init__(self, interval_seconds: float, on_error: Callable[[str], None]) -> None:
        self.interval_seconds = interval_seconds
        self.probes: list[Probe] = []
        self._on_error = on_error
        self._task: asyncio.Task[None] | None = None

    def add(self, probe: Probe) -> GaugeValues:
        """Add ``probe`` and return the values it refreshes."""
        self.probes.append(probe)
        return probe.values

    def poll(self) -> None:
        """Run every probe once (blocking)."""
        for probe in self.probes:
            try:
                probe.values.replace(probe.read())
            except Exception as error:
                self._on_error(probe.name)
                if not probe.failing:
                    logger.warning(
                        "metrics probe %s failed; keeping its last value: %s",
                        probe.name,
                        error,
                        extra={"probe": probe.name},
                    )
                probe.failing = True
                continue
            if probe.failing:
                logger.info("metrics probe %s recovered", probe.name, extra={"probe": probe.name})
            probe.failing = False

    async def start(self) -> None:
        """Start polling on the running event loop (nothing to do without probes)."""
        if self.probes and self._task is None:
            self._task = asyncio.create_task(self._run(), name="metrics-probes")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self.poll)
            await asyncio.sleep(self.interval_seconds)


def count_orphans(store: LedgerStore, older_than_seconds: float) -> int:
    """Return how many parked receipts arrived more than ``older_than_seconds`` ago."""
    cutoff = int((time.time() - older_than_seconds) * 1_000_000)
    side = store.side
    statement = side.dialect.sql(
        f"SELECT COUNT(*) AS orphans FROM {side.parked} WHERE received_at < %s"
    )
    datastore: Any = cast(Any, store.recorder).datastore
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, (cutoff,))
        # Rows are mappings on PostgreSQL and sqlite3.Row on SQLite: both index by name.
        row = cursor.fetchall()[0]
    return int(row["orphans"])


def relay_lags(store: LedgerStore, stream: str) -> list[tuple[dict[str, str], float]]:
    """Return the stored lag of the relay of ``stream`` as a gauge value."""
    # Imported here: the relay and the projections import this package for
    # their spans, so importing them at module level would be circular.
    from ledger.relay.status import relay_lag

    return [({"stream": stream}, float(relay_lag(store, stream)))]


def projection_lags(store: LedgerStore) -> list[tuple[dict[str, str], float]]:
    """Return the stored lag of every projection as gauge values, standby positions left out.

    Read through the store's pool, like the other probes: a connection of its
    own on every poll would be one more than the deployment's connection
    budget counts.
    """
    from projections.database import DatabaseTarget
    from projections.rebuild import pooled_projection_status

    target = DatabaseTarget.from_env(store.config.eventsourcing_env())
    return [
        ({"projection": status.name}, float(status.lag))
        for status in pooled_projection_status(store, target)
        if not status.standby
    ]
