"""Reading the ledger's log entries as the few fields the read models use.

The read models need a dozen plain fields of each event. eventsourcing's
mapper builds every field, raw payloads and ciphertexts included. Parsing the
stored JSON with orjson and converting only the two times was about twice as
fast on the benchmark log of ``bench/projections.py``. The fast path is taken
when the application stores plain JSON: no cipher, no compression, datetimes
in the ``datetime_iso`` transcoding, as ``LedgerApplication`` does. Otherwise
the mapper decodes entries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import resolve_topic

__all__ = ["LogDecoder", "LogEvent"]


@dataclass(slots=True)
class LogEvent:
    """One entry of the ledger's log, as the read models see it.

    Attributes:
        position: Log position (notification id).
        aggregate_id: The message's aggregate id, as text.
        version: The event's version in the message's history.
        kind: The event class, such as ``Message.Delivered``.
        recorded_at: When the ledger recorded the event.
        occurred_at: When it happened according to its source (``recorded_at``
            when the event has no source time).
        data: The event's other fields with JSON values; never read raw payloads.
    """

    position: int
    aggregate_id: str
    version: int
    kind: type[Any]
    recorded_at: datetime
    occurred_at: datetime
    data: dict[str, Any]


def _plain_json(mapper: Mapper[uuid.UUID]) -> bool:
    """Return True when stored states are JSON with times as ``datetime_iso`` objects."""
    if mapper.cipher is not None or mapper.compressor is not None:
        return False
    probe = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    try:
        encoded = orjson.loads(mapper.transcoder.encode({"t": probe}))
    except orjson.JSONDecodeError:
        return False
    value = encoded.get("t")
    return (
        isinstance(value, dict)
        and value.get("_type_") == "datetime_iso"
        and (_time(value) == probe)
    )


def _time(value: dict[str, str]) -> datetime:
    return datetime.fromisoformat(value["_data_"])


class LogDecoder:
    """Turns notifications of the ledger's log into :class:`LogEvent` values.

    Args:
        mapper: The ledger application's mapper.
    """

    def __init__(self, mapper: Mapper[uuid.UUID]) -> None:
        self.mapper = mapper
        self.fast = _plain_json(mapper)
        self._kinds: dict[str, type[Any]] = {}

    def _kind(self, topic: str) -> type[Any]:
        kind = self._kinds.get(topic)
        if kind is None:
            kind = resolve_topic(topic)
            self._kinds[topic] = kind
        return kind

    def decode_row(
        self,
        position: int,
        originator_id: uuid.UUID | str,
        version: int,
        topic: str,
        state: bytes,
    ) -> LogEvent:
        """Return the fields of one row of the events table."""
        return self.decode(
            Notification(
                id=position,
                originator_id=originator_id,
                originator_version=version,
                topic=topic,
                state=bytes(state),
            )
        )

    def decode(self, notification: Notification) -> LogEvent:
        """Return the fields of one log entry."""
        if not self.fast:
            event = self.mapper.to_domain_event(notification)
            data = dict(vars(event))
            recorded = data["timestamp"]
            return LogEvent(
                notification.id,
                str(notification.originator_id),
                notification.originator_version,
                type(event),
                recorded,
                data.get("occurred_at") or recorded,
                data,
            )
        data = orjson.loads(notification.state)
        recorded = _time(data["timestamp"])
        occurred = data.get("occurred_at")
        return LogEvent(
            notification.id,
            str(notification.originator_id),
            notification.originator_version,
            self._kind(notification.topic),
            recorded,
            recorded if occurred is None else _time(occurred),
            data,
        )
