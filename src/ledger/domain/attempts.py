"""Attempts and segments of a message, and how their outcomes combine.

A message is sent one or more times (attempts); each attempt has one or more
segments (the parts of a multipart SMS), each with its own carrier id and
receipts. The outcome of an attempt follows from its segments:

- delivered when every segment is delivered;
- failed as soon as any segment fails permanently (the first such segment);
- once every segment is final and not all succeeded, the outcome of the first
  segment, by number, that did not succeed;
- otherwise not final, at the least advanced status among unfinished segments.

A segment "succeeded" when it was delivered or its acceptance is final (a
route that never confirms handset delivery).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ledger.domain.outcomes import SUBMITTED, Outcome, Status

__all__ = ["Attempt", "Segment", "combine_segments"]

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_ORDER_OF_PROGRESS = [Status.SUBMITTED, Status.ACCEPTED, Status.ENROUTE, Status.UNKNOWN]


@dataclass
class Segment:
    """One part of a message within one attempt.

    Attributes:
        number: 1-based segment number.
        carrier_message_id: The carrier's id for this part, once accepted.
        canonical_id: ``carrier_message_id`` in its canonical matching form.
        outcome: The outcome this part holds.
    """

    number: int
    carrier_message_id: str | None = None
    canonical_id: str | None = None
    outcome: Outcome = SUBMITTED


@dataclass
class Attempt:
    """One submission of a message to a carrier connection.

    Attributes:
        number: 1-based attempt number.
        carrier: Carrier connection used.
        sender: Sender id shown to the recipient.
        segment_count: Number of segments.
        validity: Validity period given to the carrier.
        submitted_at: When the message was handed to the carrier.
        accepted_at: When the carrier first accepted it.
        whole_message_id: Carrier id covering every segment, from an
            aggregator that hides segments.
        whole_canonical_id: ``whole_message_id`` in canonical form.
        segments: The segments, in number order.
    """

    number: int
    carrier: str
    sender: str
    segment_count: int
    validity: timedelta
    submitted_at: datetime
    accepted_at: datetime | None = None
    whole_message_id: str | None = None
    whole_canonical_id: str | None = None
    segments: list[Segment] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.segments:
            self.segments = [Segment(n) for n in range(1, self.segment_count + 1)]

    @property
    def outcome(self) -> Outcome:
        """The attempt's outcome, combined from its segments."""
        return combine_segments([s.outcome for s in self.segments])

    def segment(self, number: int) -> Segment:
        """Return segment ``number`` (1-based)."""
        return self.segments[number - 1]


def combine_segments(outcomes: list[Outcome]) -> Outcome:
    """Combine segment outcomes into the outcome of their attempt."""
    if len(outcomes) == 1:
        return outcomes[0]
    if all(o.final and o.status is Status.DELIVERED for o in outcomes):
        return max(outcomes, key=_time_key)
    for o in outcomes:
        if o.permanent_failure:
            return o
    if all(o.final for o in outcomes):
        for o in outcomes:
            if not o.succeeded:
                return o
        # Every segment succeeded, some only by a final acceptance.
        return next(o for o in outcomes if o.status is Status.ACCEPTED)
    unfinished = [o for o in outcomes if not o.final]
    return min(unfinished, key=lambda o: _ORDER_OF_PROGRESS.index(o.status))


def _time_key(outcome: Outcome) -> datetime:
    return outcome.at or _EARLIEST
