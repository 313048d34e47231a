"""The relay's progress as stored in the database, readable from any process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.relay.database import read_relay_record
from ledger.storage.store import LedgerStore

__all__ = ["RelayStatus", "read_relay_status", "relay_lag"]


@dataclass(frozen=True)
class RelayStatus:
    """Stored progress of the relay of one stream.

    Attributes:
        stream: The stream name.
        log_position: The log's highest position.
        acked_position: Every publishable entry at or below it was acknowledged
            by JetStream, as last written by the relay (every
            ``commit_interval_seconds`` while it runs).
        verified_position: Every publishable entry at or below it was found in
            the stream by the last check.
        epoch: Turns taken so far; raised by each relay that takes over.
        owner: ``host:pid`` of the relay that took the latest turn.
        heartbeat_at: Time of the holder's last position write; None before
            the first relay ran.
    """

    stream: str
    log_position: int
    acked_position: int
    verified_position: int
    epoch: int
    owner: str
    heartbeat_at: datetime | None

    @property
    def lag(self) -> int:
        """Log entries not yet acknowledged by JetStream."""
        return max(0, self.log_position - self.acked_position)


def read_relay_status(store: LedgerStore, stream: str) -> RelayStatus:
    """Read the stored progress of the relay of ``stream``."""
    log_position = store.max_position()
    record = read_relay_record(store, stream)
    if record is None:
        return RelayStatus(stream, log_position, 0, 0, 0, "", None)
    heartbeat = (
        datetime.fromtimestamp(record.heartbeat_at / 1_000_000, UTC)
        if record.heartbeat_at
        else None
    )
    return RelayStatus(
        stream=stream,
        log_position=log_position,
        acked_position=record.acked_position,
        verified_position=record.checkpoint.verified_position,
        epoch=record.epoch,
        owner=record.owner,
        heartbeat_at=heartbeat,
    )


def relay_lag(store: LedgerStore, stream: str) -> int:
    """Return how many log entries the relay of ``stream`` has not had acknowledged.

    Reads the database, so it works from any process (for example a metrics
    exporter); the value is at most ``commit_interval_seconds`` stale.
    """
    return read_relay_status(store, stream).lag
