"""Results of commands, as returned to callers and kept for request-id replays."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass, field, replace

from ledger.domain.outcomes import Status

__all__ = ["CommandResult", "Disposition", "EventRef"]


class Disposition(enum.Enum):
    """What happened to a receipt."""

    RECORDED = "RECORDED"
    DUPLICATE = "DUPLICATE"
    PARKED = "PARKED"


@dataclass(frozen=True)
class EventRef:
    """An event a command appended."""

    event_id: uuid.UUID
    type: str
    version: int


@dataclass(frozen=True)
class CommandResult:
    """The result of one applied command.

    Attributes:
        tenant: Tenant of the message.
        message_id: The caller's id of the message; empty for a parked receipt.
        aggregate_id: The message's aggregate id; None for a parked receipt.
        version: Message version after the command.
        status: Message status after the command.
        events: Events the command appended.
        duplicate: The command repeated a submission or receipt already recorded.
        replayed: A repeated request id; this is the first result again.
        disposition: For receipts, whether recorded, duplicate or parked.
    """

    tenant: str
    message_id: str
    aggregate_id: uuid.UUID | None
    version: int
    status: Status | None
    events: tuple[EventRef, ...] = field(default_factory=tuple)
    duplicate: bool = False
    replayed: bool = False
    disposition: Disposition | None = None

    def to_json(self) -> str:
        """Serialize for the request-id table."""
        return json.dumps(
            {
                "tenant": self.tenant,
                "message_id": self.message_id,
                "aggregate_id": str(self.aggregate_id) if self.aggregate_id else None,
                "version": self.version,
                "status": self.status.value if self.status else None,
                "events": [[str(e.event_id), e.type, e.version] for e in self.events],
                "duplicate": self.duplicate,
                "disposition": self.disposition.value if self.disposition else None,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> CommandResult:
        """Rebuild a stored result."""
        data = json.loads(text)
        return cls(
            tenant=data["tenant"],
            message_id=data["message_id"],
            aggregate_id=uuid.UUID(data["aggregate_id"]) if data["aggregate_id"] else None,
            version=data["version"],
            status=Status(data["status"]) if data["status"] else None,
            events=tuple(EventRef(uuid.UUID(e[0]), e[1], e[2]) for e in data["events"]),
            duplicate=data["duplicate"],
            disposition=Disposition(data["disposition"]) if data["disposition"] else None,
        )

    def as_replay(self) -> CommandResult:
        """Return this result marked as a replay."""
        return replace(self, replayed=True)
