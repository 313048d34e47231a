"""The message aggregate: the lifecycle of one SMS as a chain of events.

Commands are methods that first check that they can be applied (raising a
:class:`~ledger.errors.LedgerError` otherwise, with no event triggered), then
trigger exactly the events that record the decision. Each event carries the
message's status right after it and a hash chaining it to the previous event
(:mod:`ledger.domain.audit`). Personal data arrives already encrypted: the
domain stores ciphertext, a keyed digest for comparisons, and the masked form.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from eventsourcing.domain import Aggregate

from ledger.domain.attempts import Attempt, combine_segments
from ledger.domain.audit import GENESIS_HASH, chain_hash
from ledger.domain.identity import message_aggregate_id
from ledger.domain.outcomes import EFFECT_STRENGTH, Effect, Outcome, Status, evaluate_report
from ledger.errors import FieldViolation, InvalidArgumentError, LifecycleError, NotFoundError

__all__ = [
    "Acceptance",
    "Message",
    "ProtectedNumber",
    "RawRecord",
    "ReceiptReport",
    "ReceiptResult",
    "RetryAdvice",
    "RetryPolicy",
]

# Fields every event stores that are not part of its hashed record: the hash
# itself and the bookkeeping eventsourcing adds.
_UNHASHED = frozenset(
    {
        "hash",
        "trace_context",
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
    }
)


@dataclass(frozen=True)
class ProtectedNumber:
    """A destination number as the domain may keep it.

    Attributes:
        ciphertext: The E.164 number encrypted under its subject's key.
        key_id: Id of the subject key that encrypted it.
        digest: Keyed digest of the number under the subject key, to compare
            numbers without decrypting; meaningless once the key is destroyed.
        masked: Masked form for display, such as ``+44 7700 9xxx23``.
        country: ISO 3166-1 alpha-2 region from the country code.
        country_code: E.164 calling code.
        unallocated: The number is outside current allocation metadata.
    """

    ciphertext: bytes
    key_id: str
    digest: str
    masked: str
    country: str
    country_code: int
    unallocated: bool


@dataclass(frozen=True)
class RawRecord:
    """A raw receipt payload as stored: encrypted, with its description."""

    ciphertext: bytes
    key_id: str
    format: str
    content_type: str
    source: str
    redactions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Acceptance:
    """A carrier id for one segment (0 for the whole message)."""

    segment: int
    carrier_message_id: str
    canonical_id: str


@dataclass(frozen=True)
class ReceiptReport:
    """A receipt resolved to this message, ready to be evaluated.

    Attributes:
        outcome: The reported outcome (status, finality, error, source time).
        attempt: Attempt the receipt belongs to; 0 means the latest.
        segment: 1-based segment, or 0 for every segment.
        connection: Carrier connection the receipt arrived on.
        carrier_message_id: The carrier's id as the receipt wrote it.
        received_at: When the receipt reached the ledger.
        parked: The receipt waited for the acceptance naming its carrier id.
        fingerprint: Identity of the report for duplicate detection.
        raw: The stored raw payload, if the receipt came with one.
        request_id: The caller's request id.
    """

    outcome: Outcome
    attempt: int
    segment: int
    connection: str
    carrier_message_id: str | None
    received_at: datetime
    parked: bool
    fingerprint: str
    raw: RawRecord | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class ReceiptResult:
    """What recording a receipt did."""

    duplicate: bool
    effect: Effect | None


@dataclass(frozen=True)
class RetryPolicy:
    """When the ledger advises sending a message again after a final failure.

    The delay before attempt n+1 is ``base_delay * multiplier ** (n - 1)``,
    capped at ``max_delay``, then spread by up to ``jitter`` (a fraction) in
    either direction. The spread is derived from the message id and attempt,
    so the same history always yields the same advice.
    """

    max_attempts: int = 3
    base_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)
    multiplier: float = 2.0
    jitter: float = 0.2


@dataclass(frozen=True)
class RetryAdvice:
    """A retry decision: whether, not before when, and how many attempts remain."""

    retry: bool
    not_before: datetime | None
    attempts_left: int
    reason: str


def _strongest(effects: Sequence[Effect]) -> Effect:
    return max(effects, key=EFFECT_STRENGTH.__getitem__)


class Message(Aggregate):
    """One SMS: its attempts, their segments, and the outcome they add up to."""

    if TYPE_CHECKING:
        # Declared for type checkers only: eventsourcing turns annotated
        # aggregate classes into dataclasses with a generated __init__.
        tenant: str
        message_id: str
        destination: ProtectedNumber
        attempts: list[Attempt]
        conflict: bool
        fingerprints: set[str]
        retry_advice: RetryAdvice | None
        last_hash: str
        # Trace context of the command being applied; set by the application
        # before each command and copied into the events it triggers.
        trace_context: str | None
        # Set by DestinationErased; absent until then.
        destination_erased: bool

    @staticmethod
    def create_id(tenant: str, message_id: str) -> uuid.UUID:
        """Return the deterministic aggregate id of (tenant, message id)."""
        return message_aggregate_id(tenant, message_id)

    # ------------------------------------------------------------------ events

    class Submitted(Aggregate.Created):
        """First submission of the message (attempt 1)."""

        tenant: str
        message_id: str
        attempt: int
        destination_ciphertext: bytes
        destination_key_id: str
        destination_digest: str
        destination_masked: str
        country: str
        country_code: int
        unallocated: bool
        sender: str
        carrier: str
        segment_count: int
        validity_seconds: int
        request_id: str | None
        occurred_at: datetime
        status_after: str
        final_after: bool
        conflict_after: bool
        hash: str
        trace_context: str | None

        def apply(self, aggregate: Message) -> None:
            """Initialize the message with its first attempt."""
            aggregate.tenant = self.tenant
            aggregate.message_id = self.message_id
            aggregate.destination = ProtectedNumber(
                ciphertext=self.destination_ciphertext,
                key_id=self.destination_key_id,
                digest=self.destination_digest,
                masked=self.destination_masked,
                country=self.country,
                country_code=self.country_code,
                unallocated=self.unallocated,
            )
            aggregate.attempts = []
            aggregate.conflict = False
            aggregate.fingerprints = set()
            aggregate.retry_advice = None
            aggregate.last_hash = GENESIS_HASH
            aggregate._add_attempt(self)
            aggregate.last_hash = self.hash

    class Resubmitted(Aggregate.Event):
        """A new attempt after a transient failure, rejection or expiry."""

        tenant: str
        message_id: str
        attempt: int
        sender: str
        carrier: str
        segment_count: int
        validity_seconds: int
        request_id: str | None
        occurred_at: datetime
        status_after: str
        final_after: bool
        conflict_after: bool
        hash: str
        trace_context: str | None

        def apply(self, aggregate: Message) -> None:
            """Add the new attempt."""
            aggregate._add_attempt(self)
            aggregate.last_hash = self.hash

    class CarrierAccepted(Aggregate.Event):
        """The carrier took the attempt and named its ids for the segments."""

        tenant: str
        message_id: str
        attempt: int
        carrier: str
        segments: list[dict[str, Any]]
        request_id: str | None
        occurred_at: datetime
        status_after: str
        final_after: bool
        conflict_after: bool
        hash: str
        trace_context: str | None

        def apply(self, aggregate: Message) -> None:
            """Record the carrier ids and move submitted segments to ACCEPTED."""
            attempt = aggregate.attempt(self.attempt)
            if attempt.accepted_at is None:
                attempt.accepted_at = self.occurred_at
            for item in self.segments:
                number = item["segment"]
                if number == 0:
                    attempt.whole_message_id = item["carrier_message_id"]
                    attempt.whole_canonical_id = item["canonical_id"]
                    targets = attempt.segments
                else:
                    segment = attempt.segment(number)
                    segment.carrier_message_id = item["carrier_message_id"]
                    segment.canonical_id = item["canonical_id"]
                    targets = [segment]
                for segment in targets:
                    if segment.outcome.status is Status.SUBMITTED:
                        segment.outcome = Outcome(Status.ACCEPTED, at=self.occurred_at)
            aggregate.last_hash = self.hash

    class ReceiptEvent(Aggregate.Event):
        """Base of the events a receipt (or the ledger's expiry) records."""

        tenant: str
        message_id: str
        attempt: int
        segment: int
        connection: str
        carrier_message_id: str | None
        status: str
        final: bool
        permanent: bool | None
        error_code: str | None
        error_table: str | None
        occurred_at: datetime
        received_at: datetime
        parked: bool
        effect: str
        segment_effects: list[str]
        fingerprint: str
        raw_ciphertext: bytes | None
        raw_key_id: str | None
        raw_format: str | None
        raw_content_type: str | None
        raw_source: str | None
        raw_redactions: list[str]
        inferred: bool
        inferred_reason: str | None
        inferred_deadline: datetime | None
        request_id: str | None
        status_after: str
        final_after: bool
        conflict_after: bool
        hash: str
        trace_context: str | None

        def apply(self, aggregate: Message) -> None:
            """Give the reported outcome to the segments whose effect changed them."""
            attempt = aggregate.attempt(self.attempt)
            reported = Outcome(
                status=Status(self.status),
                final=self.final,
                permanent=self.permanent,
                error_code=self.error_code,
                error_table=self.error_table,
                inferred=self.inferred,
                at=self.occurred_at,
                arrived=self.received_at,
            )
            numbers = [self.segment] if self.segment else range(1, attempt.segment_count + 1)
            for number, effect in zip(numbers, self.segment_effects, strict=True):
                if Effect(effect).changes_outcome:
                    attempt.segment(number).outcome = reported
            if self.fingerprint:
                aggregate.fingerprints.add(self.fingerprint)
            aggregate.conflict = self.conflict_after
            aggregate.last_hash = self.hash

    class Enroute(ReceiptEvent):
        """The carrier reports the message in flight."""

    class Accepted(ReceiptEvent):
        """A receipt reports acceptance by the carrier or next hop; final when
        the source says the route reports nothing further.
        """

    class Delivered(ReceiptEvent):
        """The carrier confirms delivery to the handset."""

    class Failed(ReceiptEvent):
        """The carrier reports the message not delivered."""

    class Expired(ReceiptEvent):
        """Validity ran out: reported by the carrier, or inferred by the ledger
        when no final receipt came within validity plus grace.
        """

    class Rejected(ReceiptEvent):
        """The carrier or gateway refused the message before delivery."""

    class Unknown(ReceiptEvent):
        """The carrier cannot tell what happened."""

    class RetryAdvised(Aggregate.Event):
        """The ledger's advice after a final failure: send again or not."""

        tenant: str
        message_id: str
        attempt: int
        retry: bool
        not_before: datetime | None
        attempts_left: int
        reason: str
        occurred_at: datetime
        status_after: str
        final_after: bool
        conflict_after: bool
        hash: str
        trace_context: str | None

        def apply(self, aggregate: Message) -> None:
            """Keep the latest advice."""
            aggregate.retry_advice = RetryAdvice(
                self.retry, self.not_before, self.attempts_left, self.reason
            )
            aggregate.last_hash = self.hash

    class DestinationErased(Aggregate.Event):
        """The destination's data subject was erased: its key is destroyed, so the
        stored destination and raw payloads of the message can no longer be read.

        Carries no personal data; consumers of the event stream drop their
        copies of the message's personal data when they see it.
        """

        tenant: str
        message_id: str
        attempt: int
        key_id: str
        occurred_at: datetime
        status_after: str
        final_after: bool
        conflict_after: bool
        hash: str
        trace_context: str | None

        def apply(self, aggregate: Message) -> None:
            """Mark the destination erased; the message's outcome stands."""
            aggregate.destination_erased = True
            aggregate.last_hash = self.hash

    RECEIPT_EVENTS: ClassVar[dict[Status, type[Message.ReceiptEvent]]]

    # ------------------------------------------------------------------- state

    def _add_attempt(self, event: Message.Submitted | Message.Resubmitted) -> None:
        self.attempts.append(
            Attempt(
                number=event.attempt,
                carrier=event.carrier,
                sender=event.sender,
                segment_count=event.segment_count,
                validity=timedelta(seconds=event.validity_seconds),
                submitted_at=event.occurred_at,
            )
        )

    def attempt(self, number: int) -> Attempt:
        """Return attempt ``number``; 0 means the latest.

        Raises:
            NotFoundError: The message has no such attempt.
        """
        if number == 0:
            return self.attempts[-1]
        if 1 <= number <= len(self.attempts):
            return self.attempts[number - 1]
        raise NotFoundError(
            f"message {self.message_id!r} of tenant {self.tenant!r} has no attempt {number}; "
            f"its latest attempt is {len(self.attempts)}"
        )

    @property
    def current_attempt(self) -> Attempt:
        """The latest attempt."""
        return self.attempts[-1]

    @property
    def outcome(self) -> Outcome:
        """The message's outcome: a delivery on any attempt, else the latest attempt's."""
        return self._outcome_with({})

    @property
    def outcome_attempt(self) -> Attempt:
        """The attempt whose outcome is the message's outcome."""
        for attempt in reversed(self.attempts):
            outcome = attempt.outcome
            if outcome.final and outcome.status is Status.DELIVERED:
                return attempt
        return self.attempts[-1]

    def _outcome_with(self, replaced: dict[int, Outcome]) -> Outcome:
        outcomes = [replaced.get(a.number) or a.outcome for a in self.attempts]
        for outcome in reversed(outcomes):
            if outcome.final and outcome.status is Status.DELIVERED:
                return outcome
        return outcomes[-1]

    # ---------------------------------------------------------------- commands

    @classmethod
    def submit(
        cls,
        *,
        tenant: str,
        message_id: str,
        destination: ProtectedNumber,
        sender: str,
        carrier: str,
        segment_count: int,
        validity: timedelta,
        request_id: str | None,
        occurred_at: datetime,
        recorded_at: datetime,
        trace_context: str | None = None,
    ) -> Message:
        """Create a message with its first attempt.

        ``trace_context`` (a W3C traceparent, opaque here) is kept with the
        event outside its hashed record, so that later readers can link back
        to the command that caused it.
        """
        aggregate_id = cls.create_id(tenant, message_id)
        fields: dict[str, Any] = {
            "tenant": tenant,
            "message_id": message_id,
            "attempt": 1,
            "destination_ciphertext": destination.ciphertext,
            "destination_key_id": destination.key_id,
            "destination_digest": destination.digest,
            "destination_masked": destination.masked,
            "country": destination.country,
            "country_code": destination.country_code,
            "unallocated": destination.unallocated,
            "sender": sender,
            "carrier": carrier,
            "segment_count": segment_count,
            "validity_seconds": int(validity.total_seconds()),
            "request_id": request_id,
            "occurred_at": occurred_at,
            "status_after": Status.SUBMITTED.value,
            "final_after": False,
            "conflict_after": False,
        }
        fields["hash"] = _hash(GENESIS_HASH, aggregate_id, 1, "Submitted", recorded_at, fields)
        fields["trace_context"] = trace_context
        message = cls._create(cls.Submitted, id=aggregate_id, timestamp=recorded_at, **fields)
        message.trace_context = trace_context
        return message

    def _check_not_erased(self) -> None:
        """Raise when the destination was erased: the number can no longer be compared."""
        if getattr(self, "destination_erased", False):
            raise LifecycleError(
                f"the destination of message {self.message_id!r} was erased; a new "
                "submission to that number needs a new message id",
                kind="DESTINATION_ERASED",
                message_id=self.message_id,
            )

    def check_repeated_submission(
        self,
        *,
        attempt: int,
        destination_digest: str,
        sender: str,
        carrier: str,
        segment_count: int,
        validity: timedelta,
    ) -> None:
        """Check that a Submit for an existing attempt repeats it exactly.

        Raises:
            LifecycleError: The Submit names an existing attempt with other values.
        """
        self._check_not_erased()
        recorded = self.attempt(attempt)
        differences = []
        if destination_digest != self.destination.digest:
            differences.append("destination")
        if sender != recorded.sender:
            differences.append("sender")
        if carrier != recorded.carrier:
            differences.append("carrier")
        if segment_count != recorded.segment_count:
            differences.append("segment_count")
        if int(validity.total_seconds()) != int(recorded.validity.total_seconds()):
            differences.append("validity_period")
        if differences:
            raise LifecycleError(
                f"attempt {attempt} of message {self.message_id!r} was already submitted with "
                f"other values for {', '.join(differences)}; a new attempt needs attempt "
                f"{len(self.attempts) + 1}",
                kind="ATTEMPT_CHANGED",
                message_id=self.message_id,
            )

    def resubmit(
        self,
        *,
        attempt: int,
        destination_digest: str,
        sender: str,
        carrier: str,
        segment_count: int,
        validity: timedelta,
        request_id: str | None,
        occurred_at: datetime,
        recorded_at: datetime,
    ) -> None:
        """Start attempt ``attempt`` (the latest plus one) after a retryable outcome.

        Raises:
            LifecycleError: The attempt number is not next, the message was
                delivered, failed permanently, or its latest attempt has no
                retryable final outcome yet.
        """
        self._check_not_erased()
        latest = self.current_attempt
        if attempt != latest.number + 1:
            raise LifecycleError(
                f"message {self.message_id!r} is at attempt {latest.number}; the next "
                f"attempt is {latest.number + 1}, not {attempt}",
                kind="ATTEMPT_OUT_OF_SEQUENCE",
                message_id=self.message_id,
            )
        if destination_digest != self.destination.digest:
            raise LifecycleError(
                f"attempt {attempt} of message {self.message_id!r} names another destination "
                "than attempt 1; a new destination needs a new message id",
                kind="DESTINATION_CHANGED",
                message_id=self.message_id,
            )
        outcome = self.outcome
        if outcome.succeeded:
            raise LifecycleError(
                f"message {self.message_id!r} is {outcome.status.value} and final; "
                "it takes no new attempt",
                kind="MESSAGE_FINAL",
                message_id=self.message_id,
            )
        if outcome.permanent_failure:
            raise LifecycleError(
                f"message {self.message_id!r} failed permanently (error {outcome.error_code}); "
                "it takes no new attempt",
                kind="PERMANENT_FAILURE",
                message_id=self.message_id,
            )
        if not outcome.final:
            raise LifecycleError(
                f"attempt {latest.number} of message {self.message_id!r} is "
                f"{outcome.status.value} and not final; a new attempt may follow a failure, "
                "rejection or expiry",
                kind="ATTEMPT_NOT_FINAL",
                message_id=self.message_id,
            )
        fields: dict[str, Any] = {
            "attempt": attempt,
            "sender": sender,
            "carrier": carrier,
            "segment_count": segment_count,
            "validity_seconds": int(validity.total_seconds()),
            "request_id": request_id,
            "occurred_at": occurred_at,
            "status_after": Status.SUBMITTED.value,
            "final_after": False,
            "conflict_after": self.conflict,
        }
        self._trigger(self.Resubmitted, recorded_at, fields)

    def accept(
        self,
        *,
        attempt: int,
        acceptances: Sequence[Acceptance],
        request_id: str | None,
        occurred_at: datetime,
        recorded_at: datetime,
    ) -> bool:
        """Record the carrier's ids for segments of an attempt.

        Returns:
            False when every id was already recorded (nothing appended).

        Raises:
            InvalidArgumentError: A segment number is out of range.
            LifecycleError: A segment already has a different carrier id.
        """
        target = self.attempt(attempt)
        new: list[Acceptance] = []
        for index, acceptance in enumerate(acceptances):
            number = acceptance.segment
            if number > target.segment_count:
                raise InvalidArgumentError(
                    FieldViolation(
                        f"segments[{index}].segment",
                        f"is {number}, but attempt {target.number} has "
                        f"{target.segment_count} segment(s)",
                    )
                )
            known = (
                target.whole_canonical_id if number == 0 else target.segment(number).canonical_id
            )
            if known == acceptance.canonical_id:
                continue
            if known is not None:
                raise LifecycleError(
                    f"segment {number} of attempt {target.number} of message "
                    f"{self.message_id!r} already has another carrier message id",
                    kind="CARRIER_ID_CHANGED",
                    message_id=self.message_id,
                )
            new.append(acceptance)
        if not new:
            return False

        replaced = [s.outcome for s in target.segments]
        for acceptance in new:
            numbers = (
                range(1, target.segment_count + 1)
                if acceptance.segment == 0
                else [acceptance.segment]
            )
            for number in numbers:
                if replaced[number - 1].status is Status.SUBMITTED:
                    replaced[number - 1] = Outcome(Status.ACCEPTED, at=occurred_at)
        after = self._outcome_with({target.number: combine_segments(replaced)})
        fields: dict[str, Any] = {
            "attempt": target.number,
            "carrier": target.carrier,
            "segments": [
                {
                    "segment": a.segment,
                    "carrier_message_id": a.carrier_message_id,
                    "canonical_id": a.canonical_id,
                }
                for a in new
            ],
            "request_id": request_id,
            "occurred_at": occurred_at,
            "status_after": after.status.value,
            "final_after": after.final,
            "conflict_after": self.conflict,
        }
        self._trigger(self.CarrierAccepted, recorded_at, fields)
        return True

    def record_receipt(
        self,
        report: ReceiptReport,
        recorded_at: datetime,
        policy: RetryPolicy | None = None,
    ) -> ReceiptResult:
        """Evaluate a receipt against the segments it names and record it.

        A repeat of a recorded report (same fingerprint) appends nothing.

        Raises:
            NotFoundError: The receipt names an attempt the message does not have.
            InvalidArgumentError: The receipt names a segment out of range.
        """
        if report.fingerprint and report.fingerprint in self.fingerprints:
            return ReceiptResult(duplicate=True, effect=None)
        target = self.attempt(report.attempt)
        if report.segment > target.segment_count:
            raise InvalidArgumentError(
                FieldViolation(
                    "target.message.segment",
                    f"is {report.segment}, but attempt {target.number} has "
                    f"{target.segment_count} segment(s)",
                )
            )
        event_class = self.RECEIPT_EVENTS[report.outcome.status]
        effect = self._record_report(
            event_class,
            target,
            report.segment,
            replace(report.outcome, arrived=report.received_at),
            recorded_at,
            {
                "connection": report.connection,
                "carrier_message_id": report.carrier_message_id,
                "received_at": report.received_at,
                "parked": report.parked,
                "fingerprint": report.fingerprint,
                "raw_ciphertext": report.raw.ciphertext if report.raw else None,
                "raw_key_id": report.raw.key_id if report.raw else None,
                "raw_format": report.raw.format if report.raw else None,
                "raw_content_type": report.raw.content_type if report.raw else None,
                "raw_source": report.raw.source if report.raw else None,
                "raw_redactions": list(report.raw.redactions) if report.raw else [],
                "inferred": False,
                "inferred_reason": None,
                "inferred_deadline": None,
                "request_id": report.request_id,
            },
            policy,
        )
        return ReceiptResult(duplicate=False, effect=effect)

    def infer_expiry(
        self,
        *,
        attempt: int,
        deadline: datetime,
        reason: str,
        recorded_at: datetime,
        policy: RetryPolicy | None = None,
    ) -> bool:
        """Record that ``attempt`` expired because no final receipt came in time.

        Returns:
            False when nothing was appended: the message is already final, or
            ``attempt`` is no longer the latest.
        """
        target = self.current_attempt
        if target.number != attempt or self.outcome.final:
            return False
        report = Outcome(
            status=Status.EXPIRED,
            final=True,
            permanent=False,
            inferred=True,
            at=deadline,
            arrived=recorded_at,
        )
        self._record_report(
            self.Expired,
            target,
            0,
            report,
            recorded_at,
            {
                "connection": target.carrier,
                "carrier_message_id": None,
                "received_at": recorded_at,
                "parked": False,
                "fingerprint": "",
                "raw_ciphertext": None,
                "raw_key_id": None,
                "raw_format": None,
                "raw_content_type": None,
                "raw_source": None,
                "raw_redactions": [],
                "inferred": True,
                "inferred_reason": reason,
                "inferred_deadline": deadline,
                "request_id": None,
            },
            policy,
        )
        return True

    def record_erasure(self, *, erased_at: datetime, recorded_at: datetime) -> None:
        """Record that the destination's subject key was destroyed at ``erased_at``."""
        outcome = self.outcome
        fields: dict[str, Any] = {
            "attempt": self.current_attempt.number,
            "key_id": self.destination.key_id,
            "occurred_at": erased_at,
            "status_after": outcome.status.value,
            "final_after": outcome.final,
            "conflict_after": self.conflict,
        }
        self._trigger(self.DestinationErased, recorded_at, fields)

    # ----------------------------------------------------------------- helpers

    def _record_report(
        self,
        event_class: type[Message.ReceiptEvent],
        target: Attempt,
        segment: int,
        reported: Outcome,
        recorded_at: datetime,
        details: dict[str, Any],
        policy: RetryPolicy | None,
    ) -> Effect:
        before = self.outcome
        numbers = [segment] if segment else list(range(1, target.segment_count + 1))
        outcomes = [s.outcome for s in target.segments]
        effects = []
        for number in numbers:
            held, effect = evaluate_report(outcomes[number - 1], reported)
            outcomes[number - 1] = held
            effects.append(effect)
        after = self._outcome_with({target.number: combine_segments(outcomes)})
        conflict = self.conflict or any(e.is_conflict for e in effects)
        effect = _strongest(effects)
        fields: dict[str, Any] = {
            "attempt": target.number,
            "segment": segment,
            "status": reported.status.value,
            "final": reported.final,
            "permanent": reported.permanent,
            "error_code": reported.error_code,
            "error_table": reported.error_table,
            "occurred_at": reported.at,
            **details,
            "effect": effect.value,
            "segment_effects": [e.value for e in effects],
            "status_after": after.status.value,
            "final_after": after.final,
            "conflict_after": conflict,
        }
        self._trigger(event_class, recorded_at, fields)
        if policy is not None and _newly_failed(before, after):
            self._advise(policy, recorded_at)
        return effect

    def _advise(self, policy: RetryPolicy, recorded_at: datetime) -> None:
        """Record whether the message should be sent again after its final failure."""
        outcome = self.outcome
        attempt = self.current_attempt.number
        attempts_left = max(policy.max_attempts - attempt, 0)
        not_before = None
        if outcome.permanent_failure or (
            outcome.status is Status.REJECTED and outcome.permanent is True
        ):
            retry, reason = False, f"permanent failure (error {outcome.error_code})"
        elif outcome.status is Status.UNKNOWN:
            retry, reason = False, "outcome unknown: a new attempt could deliver twice"
        elif attempts_left == 0:
            retry, reason = False, f"the maximum of {policy.max_attempts} attempts is reached"
        else:
            retry = True
            reason = f"{outcome.status.value.lower()} on attempt {attempt}; may succeed later"
            not_before = recorded_at + _backoff(policy, self.id, attempt)
        fields: dict[str, Any] = {
            "attempt": attempt,
            "retry": retry,
            "not_before": not_before,
            "attempts_left": attempts_left if retry else 0,
            "reason": reason,
            "occurred_at": recorded_at,
            "status_after": outcome.status.value,
            "final_after": outcome.final,
            "conflict_after": self.conflict,
        }
        self._trigger(self.RetryAdvised, recorded_at, fields)

    def _trigger(
        self, event_class: type[Aggregate.Event], recorded_at: datetime, fields: dict[str, Any]
    ) -> None:
        fields["tenant"] = self.tenant
        fields["message_id"] = self.message_id
        fields["trace_context"] = getattr(self, "trace_context", None)
        fields["hash"] = _hash(
            self.last_hash, self.id, self.version + 1, event_class.__name__, recorded_at, fields
        )
        self.trigger_event(event_class, timestamp=recorded_at, **fields)


Message.RECEIPT_EVENTS = dict(
    {
        Status.ENROUTE: Message.Enroute,
        Status.ACCEPTED: Message.Accepted,
        Status.DELIVERED: Message.Delivered,
        Status.FAILED: Message.Failed,
        Status.EXPIRED: Message.Expired,
        Status.REJECTED: Message.Rejected,
        Status.UNKNOWN: Message.Unknown,
    }
)


def _newly_failed(before: Outcome, after: Outcome) -> bool:
    """True when the message reached a final outcome that is not a success."""
    if not after.final or after.succeeded:
        return False
    return not before.final or (before.status, before.error_code) != (
        after.status,
        after.error_code,
    )


def _backoff(policy: RetryPolicy, aggregate_id: uuid.UUID, attempt: int) -> timedelta:
    base = policy.base_delay.total_seconds() * policy.multiplier ** (attempt - 1)
    capped = min(base, policy.max_delay.total_seconds())
    seed = hashlib.sha256(f"{aggregate_id}:{attempt}".encode()).digest()
    spread = (int.from_bytes(seed[:4], "big") / 0xFFFFFFFF) * 2 - 1
    return timedelta(seconds=round(capped * (1 + policy.jitter * spread), 3))


def _hash(
    previous: str,
    aggregate_id: uuid.UUID,
    version: int,
    event_type: str,
    recorded_at: datetime,
    fields: dict[str, Any],
) -> str:
    record = {k: v for k, v in fields.items() if k not in _UNHASHED}
    record["aggregate_id"] = aggregate_id
    record["version"] = version
    record["type"] = event_type
    record["recorded_at"] = recorded_at
    return chain_hash(previous, record)


def hashed_record(event: Any) -> tuple[str, dict[str, Any]]:
    """Return an event's hash and the record it was computed from.

    Verifiers recompute ``chain_hash(previous, record)`` and compare it with
    the returned hash.
    """
    state = dict(vars(event))
    record = {k: v for k, v in state.items() if k not in _UNHASHED}
    record["aggregate_id"] = event.originator_id
    record["version"] = event.originator_version
    record["type"] = type(event).__name__
    record["recorded_at"] = event.timestamp
    return str(state["hash"]), record
