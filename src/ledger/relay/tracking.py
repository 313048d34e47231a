"""The relay's row in the ledger database: acknowledged position, epoch, checkpoints.

One row per stream in table ``relay_position`` (in the ledger's schema on
PostgreSQL, in the ledger file on SQLite):

- ``acked_position``: every publishable log entry at or below it was
  acknowledged by JetStream.
- ``epoch``: raised by one each time a relay takes over. Every write names the
  epoch its relay claimed and changes nothing when the epoch has moved on, so a
  relay that lost its turn cannot move the position (fencing).
- ``checkpoints``: the last results of the stream check (see
  :mod:`ledger.relay.check`), as JSON.
- ``heartbeat_at``: database time of the holder's last write, in epoch
  microseconds, from which a relay that takes over computes how long the
  previous holder may still publish.

The statements run on a DB-API cursor of either database. Times come from the
database clock, so that relays on several hosts compare the same clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger.storage.tables import POSTGRES, Cursor, Dialect

__all__ = ["TABLE_NAME", "Checkpoint", "Claim", "PositionTable", "RelayRecord"]

TABLE_NAME = "relay_position"

MAX_CHECKPOINTS = 20
"""Checkpoints kept per stream; older ones are dropped."""

_NOW = {
    "postgresql": "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT",
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)",
}


@dataclass(frozen=True)
class Checkpoint:
    """A verified state of the stream against the log.

    Attributes:
        verified_position: Every publishable log entry at or below it is in the stream.
        start_sequence: Every stream message with a position above
            ``verified_position`` has a stream sequence above this one.
        end_sequence: Every entry at or below ``verified_position`` is stored at
            this stream sequence or below.
        end_msg_id: ``Nats-Msg-Id`` of the message at ``end_sequence``. A later
            check reads that message to tell whether the stream still contains it.
    """

    verified_position: int = 0
    start_sequence: int = 0
    end_sequence: int = 0
    end_msg_id: str = ""


@dataclass(frozen=True)
class RelayRecord:
    """The stored state of the relay of one stream."""

    stream: str
    epoch: int
    acked_position: int
    checkpoints: tuple[Checkpoint, ...]
    owner: str
    heartbeat_at: int

    @property
    def checkpoint(self) -> Checkpoint:
        """The latest checkpoint (all zero before the first check)."""
        return self.checkpoints[-1] if self.checkpoints else Checkpoint()


@dataclass(frozen=True)
class Claim:
    """The row after a relay raised the epoch, and how long it must wait.

    Attributes:
        record: The row as claimed, with the new epoch.
        wait_seconds: Time left on the previous holder's lease.
    """

    record: RelayRecord
    wait_seconds: float


_COLUMNS = ("epoch", "acked_position", "checkpoints", "owner", "heartbeat_at")


def _values(row: Any, names: tuple[str, ...], offset: int = 0) -> tuple[Any, ...]:
    # psycopg rows of the ledger's pool are dicts; sqlite3 rows are sequences.
    if isinstance(row, dict):
        return tuple(row[name] for name in names)
    return tuple(row)[offset : offset + len(names)]


def _dump(checkpoints: tuple[Checkpoint, ...]) -> str:
    return json.dumps(
        [
            [c.verified_position, c.start_sequence, c.end_sequence, c.end_msg_id]
            for c in checkpoints[-MAX_CHECKPOINTS:]
        ]
    )


def _load(text: str) -> tuple[Checkpoint, ...]:
    return tuple(Checkpoint(int(v), int(q), int(s), str(m)) for v, q, s, m in json.loads(text))


class PositionTable:
    """Statements on the ``relay_position`` table for one dialect.

    Args:
        dialect: The database dialect.
        qualified_name: The table name with its schema where needed, such as
            ``'"ledger".relay_position'``.
    """

    def __init__(self, dialect: Dialect, qualified_name: str) -> None:
        self.dialect = dialect
        self.name = qualified_name
        self._now = _NOW[dialect.name]

    def _run(self, curs: Cursor, statement: str, params: Any = ()) -> Any:
        return curs.execute(self.dialect.sql(statement), params)

    def create(self, curs: Cursor) -> None:
        """Create the table if it is missing."""
        self._run(
            curs,
            f"CREATE TABLE IF NOT EXISTS {self.name} ("
            "stream TEXT PRIMARY KEY, "
            "epoch BIGINT NOT NULL, "
            "acked_position BIGINT NOT NULL, "
            "checkpoints TEXT NOT NULL, "
            "owner TEXT NOT NULL, "
            "heartbeat_at BIGINT NOT NULL)",
        )

    def read(self, curs: Cursor, stream: str) -> RelayRecord | None:
        """Return the row of ``stream``, or None before its relay first ran."""
        self._run(
            curs,
            "SELECT epoch, acked_position, checkpoints, owner, heartbeat_at "
            f"FROM {self.name} WHERE stream = %s",
            (stream,),
        )
        rows = curs.fetchall()
        if not rows:
            return None
        return self._record(stream, rows[0])

    def _record(self, stream: str, row: Any) -> RelayRecord:
        epoch, acked, checkpoints, owner, heartbeat = _values(row, _COLUMNS)
        return RelayRecord(
            stream, int(epoch), int(acked), _load(checkpoints), owner, int(heartbeat)
        )

    def claim(self, curs: Cursor, stream: str, owner: str, lease_seconds: float) -> Claim:
        """Raise the epoch of ``stream`` (creating its row) and name ``owner`` holder.

        The heartbeat is left as the previous holder wrote it; the returned wait
        is what remains of that holder's lease by the database clock.
        """
        self._run(
            curs,
            f"INSERT INTO {self.name} "
            "(stream, epoch, acked_position, checkpoints, owner, heartbeat_at) "
            "VALUES (%s, 0, 0, '[]', '', 0) ON CONFLICT (stream) DO NOTHING",
            (stream,),
        )
        self._run(
            curs,
            f"UPDATE {self.name} SET epoch = epoch + 1, owner = %s WHERE stream = %s",
            (owner, stream),
        )
        self._run(
            curs,
            "SELECT epoch, acked_position, checkpoints, owner, heartbeat_at, "
            f"{self._now} AS now FROM {self.name} WHERE stream = %s",
            (stream,),
        )
        row = curs.fetchall()[0]
        record = self._record(stream, row)
        (now,) = _values(row, ("now",), offset=len(_COLUMNS))
        remaining = record.heartbeat_at + lease_seconds * 1_000_000 - int(now)
        return Claim(record, max(0.0, remaining / 1_000_000))

    def save_position(self, curs: Cursor, stream: str, epoch: int, acked_position: int) -> bool:
        """Store the acknowledged position and a heartbeat; False when fenced off."""
        self._run(
            curs,
            f"UPDATE {self.name} SET acked_position = %s, heartbeat_at = {self._now} "
            "WHERE stream = %s AND epoch = %s RETURNING epoch",
            (acked_position, stream, epoch),
        )
        return bool(curs.fetchall())

    def save_checkpoints(
        self, curs: Cursor, stream: str, epoch: int, checkpoints: tuple[Checkpoint, ...]
    ) -> bool:
        """Store the checkpoints (the last :data:`MAX_CHECKPOINTS`); False when fenced off."""
        self._run(
            curs,
            f"UPDATE {self.name} SET checkpoints = %s WHERE stream = %s AND epoch = %s "
            "RETURNING epoch",
            (_dump(checkpoints), stream, epoch),
        )
        return bool(curs.fetchall())

    def exists(self, curs: Cursor) -> bool:
        """Return True when the table exists."""
        if self.dialect is POSTGRES:
            self._run(curs, "SELECT to_regclass(%s) IS NOT NULL AS found", (self.name,))
            return bool(_values(curs.fetchall()[0], ("found",))[0])
        self._run(
            curs,
            "SELECT count(*) AS count FROM sqlite_master WHERE type = 'table' AND name = %s",
            (self.name,),
        )
        return bool(_values(curs.fetchall()[0], ("count",))[0])
