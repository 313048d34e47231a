"""Results of commands, as returned to callers and kept for request-id replays."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ledger import errors
from ledger.domain.audit import event_id
from ledger.domain.message import RetryAdvice
from ledger.domain.outcomes import Status
from ledger.errors import LedgerError

__all__ = ["CommandResult", "Disposition", "EventRef"]


class Disposition(enum.Enum):
    """What happened to a receipt."""

    RECORDED = "RECORDED"
    DUPLICATE = "DUPLICATE"
    PARKED = "PARKED"


@dataclass(frozen=True)
class EventRef:
    """An event a command appended."""

    aggregate_id: uuid.UUID
    type: str
    version: int

    @property
    def event_id(self) -> uuid.UUID:
        """The event's deterministic id."""
        return event_id(self.aggregate_id, self.version)


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
        retry: Retry advice the command produced, if it made the message fail.
        receipts: For a raw receipt, one result per report it carried.
        warnings: For a raw receipt, the parser's notes.
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
    retry: RetryAdvice | None = None
    receipts: tuple[CommandResult | LedgerError, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_json(self) -> str:
        """Serialize for the request-id table."""
        return json.dumps(self._to_dict(), separators=(",", ":"))

    def _to_dict(self) -> dict[str, object]:
        retry = None
        if self.retry is not None:
            retry = {
                "retry": self.retry.retry,
                "not_before": self.retry.not_before.isoformat() if self.retry.not_before else None,
                "attempts_left": self.retry.attempts_left,
                "reason": self.retry.reason,
            }
        return {
            "tenant": self.tenant,
            "message_id": self.message_id,
            "aggregate_id": str(self.aggregate_id) if self.aggregate_id else None,
            "version": self.version,
            "status": self.status.value if self.status else None,
            "events": [[str(e.aggregate_id), e.type, e.version] for e in self.events],
            "duplicate": self.duplicate,
            "disposition": self.disposition.value if self.disposition else None,
            "retry": retry,
            "receipts": [_receipt_to_dict(r) for r in self.receipts],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, text: str) -> CommandResult:
        """Rebuild a stored result."""
        return cls._from_dict(json.loads(text))

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> CommandResult:
        retry = data.get("retry")
        return cls(
            tenant=data["tenant"],
            message_id=data["message_id"],
            aggregate_id=uuid.UUID(data["aggregate_id"]) if data["aggregate_id"] else None,
            version=data["version"],
            status=Status(data["status"]) if data["status"] else None,
            events=tuple(EventRef(uuid.UUID(e[0]), e[1], e[2]) for e in data["events"]),
            duplicate=data["duplicate"],
            disposition=Disposition(data["disposition"]) if data["disposition"] else None,
            retry=RetryAdvice(
                retry["retry"],
                datetime.fromisoformat(retry["not_before"]) if retry["not_before"] else None,
                retry["attempts_left"],
                retry["reason"],
            )
            if retry
            else None,
            receipts=tuple(_receipt_from_dict(r) for r in data.get("receipts", [])),
            warnings=tuple(data.get("warnings", [])),
        )

    def as_replay(self) -> CommandResult:
        """Return this result marked as a replay."""
        return replace(self, replayed=True)


def _receipt_to_dict(result: CommandResult | LedgerError) -> dict[str, object]:
    if isinstance(result, errors.InvalidArgumentError):
        violations = [[v.field, v.description] for v in result.violations]
        return {
            "error": "InvalidArgumentError",
            "message": result.message,
            "violations": violations,
        }
    if isinstance(result, LedgerError):
        return {"error": type(result).__name__, "message": result.message}
    return result._to_dict()


def _receipt_from_dict(data: dict[str, Any]) -> CommandResult | LedgerError:
    if data.get("error") == "InvalidArgumentError":
        return errors.InvalidArgumentError(
            [errors.FieldViolation(f, d) for f, d in data.get("violations", [])]
        )
    if "error" in data:
        cls = getattr(errors, str(data["error"]), None)
        if isinstance(cls, type) and issubclass(cls, LedgerError):
            error = LedgerError.__new__(cls)
            LedgerError.__init__(error, str(data["message"]))
            return error
        return errors.InternalError(str(data["message"]))
    return CommandResult._from_dict(data)
