"""Per-message state folded from the ledger's events: the input of every read model.

A :class:`MessageFold` keeps what the read models need of a message (its
attempts with their carriers, milestones and segment outcomes) and combines
segment and attempt outcomes with the domain's own rules, so the read models
agree with the aggregate. It contains no personal data: the destination appears
only as its country, which the ledger stored in clear at ingest. Times are
aware UTC datetimes in memory and epoch microseconds when serialized.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ledger.domain.attempts import combine_segments
from ledger.domain.message import Message
from ledger.domain.outcomes import Effect, Outcome, Status
from ledger.storage.records import from_micros, to_micros
from projections.decode import LogEvent

__all__ = [
    "AttemptFold",
    "MessageFold",
    "apply_event",
    "fold_from_json",
    "fold_to_json",
    "from_micros",
    "start_fold",
    "to_micros",
]

_SUBMITTED = Outcome(Status.SUBMITTED)
_CHANGING_EFFECTS = frozenset(e.value for e in Effect if e.changes_outcome)
_STATUSES = {s.value: s for s in Status}


@dataclass(slots=True)
class AttemptFold:
    """One attempt of a message as the read models see it.

    Attributes:
        number: 1-based attempt number.
        carrier: Carrier connection of the attempt.
        segment_count: Number of segments.
        submitted_at: When the attempt was handed to the carrier (source time).
        accepted_at: When the carrier first accepted it, if it did.
        segments: The outcome each segment holds, in segment order.
    """

    number: int
    carrier: str
    segment_count: int
    submitted_at: datetime
    accepted_at: datetime | None
    segments: list[Outcome]

    @property
    def outcome(self) -> Outcome:
        """The attempt's outcome, combined from its segments by the domain's rules."""
        return combine_segments(self.segments)


@dataclass(slots=True)
class MessageFold:
    """One message as the read models see it.

    Attributes:
        aggregate_id: The message's aggregate id, as text.
        tenant: Tenant of the message.
        message_id: The caller's id of the message.
        country: ISO 3166-1 alpha-2 region of the destination.
        version: Version of the last event folded in.
        updated_at: When the ledger recorded the last event.
        conflict: Carrier finals disagreed at some point.
        attempts: The attempts, in number order.
    """

    aggregate_id: str
    tenant: str
    message_id: str
    country: str
    version: int
    updated_at: datetime
    conflict: bool
    attempts: list[AttemptFold]

    @property
    def submitted_at(self) -> datetime:
        """When the first attempt was submitted: the start of the message's cohort."""
        return self.attempts[0].submitted_at

    @property
    def cohort_hour(self) -> int:
        """Start of the UTC hour of the first submission, in epoch seconds."""
        seconds = to_micros(self.submitted_at) // 1_000_000
        return seconds - seconds % 3600

    @property
    def outcome_attempt(self) -> AttemptFold:
        """The attempt whose outcome is the message's: the latest delivered one,
        else the latest attempt (as ``Message.outcome_attempt`` decides).
        """
        for attempt in reversed(self.attempts):
            outcome = attempt.outcome
            if outcome.final and outcome.status is Status.DELIVERED:
                return attempt
        return self.attempts[-1]

    @property
    def outcome(self) -> Outcome:
        """The message's outcome."""
        return self.outcome_attempt.outcome


def _new_attempt(event: LogEvent) -> AttemptFold:
    data = event.data
    count = data["segment_count"]
    return AttemptFold(
        number=data["attempt"],
        carrier=data["carrier"],
        segment_count=count,
        submitted_at=event.occurred_at,
        accepted_at=None,
        segments=[_SUBMITTED] * count,
    )


def start_fold(event: LogEvent) -> MessageFold:
    """Return the fold of a message from its first event (``Message.Submitted``)."""
    data = event.data
    return MessageFold(
        aggregate_id=event.aggregate_id,
        tenant=data["tenant"],
        message_id=data["message_id"],
        country=data["country"],
        version=event.version,
        updated_at=event.recorded_at,
        conflict=data["conflict_after"],
        attempts=[_new_attempt(event)],
    )


def apply_event(fold: MessageFold, event: LogEvent) -> bool:
    """Fold one later event of the message into ``fold``.

    Events of other types (such as retry advice) change only the version and
    the update time, as they change nothing else the read models show.

    Returns:
        False when the event is not newer than the fold (nothing changed).
    """
    if event.version <= fold.version:
        return False
    kind = event.kind
    if issubclass(kind, Message.ReceiptEvent):
        _apply_receipt(fold, event)
        # As in the aggregate, only receipts change the conflict flag.
        fold.conflict = event.data["conflict_after"]
    elif kind is Message.CarrierAccepted:
        _apply_acceptance(fold, event)
    elif kind is Message.Resubmitted:
        fold.attempts.append(_new_attempt(event))
    fold.version = event.version
    fold.updated_at = event.recorded_at
    return True


def _apply_acceptance(fold: MessageFold, event: LogEvent) -> None:
    attempt = fold.attempts[event.data["attempt"] - 1]
    occurred = event.occurred_at
    if attempt.accepted_at is None:
        attempt.accepted_at = occurred
    accepted = Outcome(Status.ACCEPTED, at=occurred)
    for item in event.data["segments"]:
        number = item["segment"]
        numbers = range(1, attempt.segment_count + 1) if number == 0 else (number,)
        for n in numbers:
            if attempt.segments[n - 1].status is Status.SUBMITTED:
                attempt.segments[n - 1] = accepted


def _apply_receipt(fold: MessageFold, event: LogEvent) -> None:
    data = event.data
    attempt = fold.attempts[data["attempt"] - 1]
    reported = Outcome(
        status=_STATUSES[data["status"]],
        final=data["final"],
        permanent=data["permanent"],
        error_code=data["error_code"],
        error_table=data["error_table"],
        inferred=data["inferred"],
        at=event.occurred_at,
    )
    segment = data["segment"]
    numbers = (segment,) if segment else range(1, attempt.segment_count + 1)
    for number, effect in zip(numbers, data["segment_effects"], strict=True):
        if effect in _CHANGING_EFFECTS:
            attempt.segments[number - 1] = reported


# ------------------------------------------------------------- serialization


def _outcome_to_list(outcome: Outcome) -> list[Any]:
    return [
        outcome.status.value,
        int(outcome.final),
        None if outcome.permanent is None else int(outcome.permanent),
        outcome.error_code,
        outcome.error_table,
        int(outcome.inferred),
        None if outcome.at is None else to_micros(outcome.at),
    ]


def _outcome_from_list(item: list[Any]) -> Outcome:
    status, final, permanent, error_code, error_table, inferred, at = item
    if status == "SUBMITTED" and at is None:
        return _SUBMITTED
    return Outcome(
        status=_STATUSES[status],
        final=bool(final),
        permanent=None if permanent is None else bool(permanent),
        error_code=error_code,
        error_table=error_table,
        inferred=bool(inferred),
        at=None if at is None else from_micros(at),
    )


def fold_to_json(fold: MessageFold) -> str:
    """Serialize a fold to compact JSON (stored beside each read model's rows)."""
    return orjson.dumps(
        [
            fold.tenant,
            fold.message_id,
            fold.country,
            fold.version,
            to_micros(fold.updated_at),
            int(fold.conflict),
            [
                [
                    a.carrier,
                    a.segment_count,
                    to_micros(a.submitted_at),
                    None if a.accepted_at is None else to_micros(a.accepted_at),
                    [_outcome_to_list(s) for s in a.segments],
                ]
                for a in fold.attempts
            ],
        ],
    ).decode()


def fold_from_json(aggregate_id: str | uuid.UUID, text: str) -> MessageFold:
    """Rebuild a fold from :func:`fold_to_json` output."""
    tenant, message_id, country, version, updated_at, conflict, attempts = orjson.loads(text)
    return MessageFold(
        aggregate_id=str(aggregate_id),
        tenant=tenant,
        message_id=message_id,
        country=country,
        version=version,
        updated_at=from_micros(updated_at),
        conflict=bool(conflict),
        attempts=[
            AttemptFold(
                number=number,
                carrier=carrier,
                segment_count=segment_count,
                submitted_at=from_micros(submitted_at),
                accepted_at=None if accepted_at is None else from_micros(accepted_at),
                segments=[_outcome_from_list(s) for s in segments],
            )
            for number, (carrier, segment_count, submitted_at, accepted_at, segments) in enumerate(
                attempts, 1
            )
        ],
    )
