"""Ground truth: the state a message must reach after its script.

This model follows the product's lifecycle rules directly and shares no code
with the ledger's domain, so that the simulator checks the ledger rather than
itself:

- a status that is not final never moves a segment back (SUBMITTED <
  ACCEPTED < ENROUTE) and never replaces a final one;
- a carrier final replaces an expiry the ledger inferred;
- DELIVERED replaces any other carrier final, whichever came first. Between
  other carrier finals the first to arrive at the ledger stays. A parked
  receipt counts from its arrival, not from the acceptance that released it.
  Every disagreement between carrier finals flags a conflict;
- a receipt by carrier id belongs to the attempt and segment that the
  acceptance with that id named (segment 0: every segment); until that
  acceptance arrives it is parked;
- a multipart attempt is delivered when every segment is, failed as soon as a
  segment fails permanently, and once every segment is final and not all
  succeeded, takes the outcome of the lowest-numbered segment that did not
  succeed (a final acceptance counts as success);
- a delivery on any attempt makes the message DELIVERED; otherwise the latest
  attempt's outcome is the message's;
- an exact resend of a receipt (same target, segment, status, error code and
  source time) changes nothing and counts as a duplicate; a resent command
  with the same request id is a replay and changes nothing at all.

For the read models it also records, from the times the scripts send, each
attempt's submission, first acceptance and delivery (a multipart attempt is
delivered when its last segment is), the message's destination region and
the hour of its first submission.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from ledger.simulate.steps import Accept, Receipt, Replay, Step, Submit, WaitForExpiry

__all__ = [
    "LATENCY_METRICS",
    "Disposition",
    "ExpectedState",
    "LatencySample",
    "MessageTruth",
    "Outcome",
    "canonical_id",
    "expected_outcome",
    "region_of",
]

Disposition = Literal["ok", "recorded", "parked", "duplicate", "replayed"]
"""The result the ledger must return for a step: a receipt's disposition, a replay, or plain OK."""

# Order of statuses that are not final. NOTE: the product leaves the rank of a
# non-final UNKNOWN open; the generated scripts send UNKNOWN only as a final.
_PROGRESS_RANK = {"SUBMITTED": 0, "ACCEPTED": 1, "ENROUTE": 2, "UNKNOWN": 3}


# Calling codes of the simulator's destination ranges (see ``plan.py``). No
# prefix starts another, and +1 202 is Washington, D.C.
_REGIONS = (("+1202", "US"), ("+33", "FR"), ("+44", "GB"), ("+61", "AU"))

LATENCY_METRICS = ("submit_to_accepted", "submit_to_delivered", "accepted_to_delivered")
"""Latencies within one attempt, as the read models name them."""


def region_of(destination: str) -> str:
    """Return the ISO 3166-1 alpha-2 region of a simulated destination; empty when unknown."""
    for prefix, region in _REGIONS:
        if destination.startswith(prefix):
            return region
    return ""


def canonical_id(raw: str) -> str:
    """Return a carrier id in the form the ledger's default rule matches it by.

    The default rule ignores letter case and leading zeros.
    """
    return raw.strip().upper().lstrip("0") or "0"


@dataclass(frozen=True)
class Outcome:
    """What a segment holds.

    Attributes:
        status: Lifecycle status name.
        final: No further status is expected.
        permanent: For failures, whether a retry would fail again.
        error_code: Error code; empty for none.
        inferred: The ledger inferred it (expiry without a final receipt).
        arrival: Arrival number of the receipt that set it (0 when no receipt).
        at: Source time of the status as the ledger records it. None when
            the ledger takes it from its own clock (an inferred expiry, a
            raw receipt that states no time).
    """

    status: str
    final: bool = False
    permanent: bool | None = None
    error_code: str = ""
    inferred: bool = False
    arrival: int = 0
    at: datetime | None = field(default=None, compare=False)

    @property
    def succeeded(self) -> bool:
        """True for a delivery, or an acceptance that its source marks final."""
        return self.final and self.status in ("DELIVERED", "ACCEPTED")

    @property
    def permanent_failure(self) -> bool:
        """True for a failure that a retry would meet again."""
        return self.final and self.status == "FAILED" and self.permanent is True

    def agrees_with(self, other: Outcome) -> bool:
        """True when two finals report the same status and error code."""
        return self.status == other.status and self.error_code == other.error_code


_SUBMITTED = Outcome("SUBMITTED")


@dataclass(frozen=True)
class LatencySample:
    """One latency of one attempt, as the read models must count it.

    Attributes:
        carrier: Connection of the attempt.
        metric: One of :data:`LATENCY_METRICS`.
        milliseconds: The latency from the script's own times. None when an
            end of it is a time the ledger takes from its clock.
    """

    carrier: str
    metric: str
    milliseconds: float | None


@dataclass(frozen=True)
class ExpectedState:
    """The state the ledger must report for a message.

    Attributes:
        status: Message status name.
        final: Whether the status is final.
        attempt_count: Number of attempts.
        conflict: Carrier finals disagreed.
        duplicate_count: Receipts recognized as exact resends.
        expiry_inferred: The status is an expiry the ledger inferred.
        permanent: Permanence of a FAILED status; compared only for FAILED.
        error_code: Error code of the holding outcome (empty for none); None
            when the rules leave it open (several segments failed
            permanently with different codes).
        carrier: Connection credited with the outcome; None when the rules
            leave it open (several attempts delivered).
        credited_carrier: Connection whose statistics count the message: the
            latest delivered attempt's, else the latest attempt's.
        accepted: The credited attempt was accepted (an acceptance was
            recorded, or its outcome is ACCEPTED, ENROUTE or DELIVERED).
        country: Region of the destination.
        cohort_hour: Start of the UTC hour of the first submission, in epoch seconds.
        attempt_carriers: Connection of each attempt, in attempt order.
        latencies: Every latency sample of every attempt.
    """

    status: str
    final: bool
    attempt_count: int
    conflict: bool
    duplicate_count: int
    expiry_inferred: bool
    permanent: bool | None
    error_code: str | None
    carrier: str | None
    credited_carrier: str = ""
    accepted: bool = False
    country: str = ""
    cohort_hour: int = 0
    attempt_carriers: tuple[str, ...] = ()
    latencies: tuple[LatencySample, ...] = ()


@dataclass
class _Attempt:
    number: int
    carrier: str
    expires_in_run: bool
    segments: list[Outcome]
    submitted_at: datetime
    accepted_at: datetime | None = None

    def latencies(self) -> list[LatencySample]:
        """Return the attempt's latency samples, by the read models' rule."""
        samples = []
        if self.accepted_at is not None:
            samples.append(
                LatencySample(
                    self.carrier, "submit_to_accepted", _ms(self.accepted_at - self.submitted_at)
                )
            )
        outcome, _ = _combine(self.segments)
        if outcome.final and outcome.status == "DELIVERED":
            done = outcome.at
            to_done = None if done is None else _ms(done - self.submitted_at)
            samples.append(LatencySample(self.carrier, "submit_to_delivered", to_done))
            if self.accepted_at is not None:
                after = None if done is None else _ms(done - self.accepted_at)
                samples.append(LatencySample(self.carrier, "accepted_to_delivered", after))
        return samples


def _ms(delta: timedelta) -> float:
    return delta / timedelta(milliseconds=1)


@dataclass
class _Parked:
    arrival: int
    receipt: Receipt
    fingerprint: tuple[object, ...]


def _evaluate(held: Outcome, report: Outcome) -> tuple[Outcome, bool]:
    """Return the outcome a segment holds after ``report``, and whether finals disagreed."""
    if not report.final:
        if held.final or _PROGRESS_RANK[report.status] <= _PROGRESS_RANK[held.status]:
            return held, False
        return report, False
    if not held.final:
        return report, False
    if held.inferred:
        return (held, False) if report.inferred else (report, False)
    if report.inferred or held.agrees_with(report):
        return held, False
    if held.status == "DELIVERED":
        return held, True
    if report.status == "DELIVERED":
        return report, True
    first = report if report.arrival < held.arrival else held
    return first, True


def _combine(segments: list[Outcome]) -> tuple[Outcome, bool]:
    """Return an attempt's outcome from its segments, and whether its error code is defined."""
    if len(segments) == 1:
        return segments[0], True
    if all(s.final and s.status == "DELIVERED" for s in segments):
        # Delivered when the last segment is; unknown when any time is the ledger's.
        times = [s.at for s in segments]
        last = None if None in times else max(t for t in times if t is not None)
        return Outcome("DELIVERED", final=True, at=last), True
    permanent = [s for s in segments if s.permanent_failure]
    if permanent:
        same_code = len({s.error_code for s in permanent}) == 1
        return permanent[0], same_code
    if all(s.final for s in segments):
        for segment in segments:
            if not segment.succeeded:
                return segment, True
        return Outcome("ACCEPTED", final=True), True
    unfinished = [s for s in segments if not s.final]
    return min(unfinished, key=lambda s: _PROGRESS_RANK[s.status]), True


def _report_of(receipt: Receipt, arrival: int) -> Outcome:
    permanent = receipt.permanent
    if receipt.status == "EXPIRED":
        permanent = False
    elif receipt.status not in ("FAILED", "REJECTED"):
        permanent = None
    error_code = "" if receipt.status == "DELIVERED" else receipt.error_code
    return Outcome(
        receipt.status,
        final=receipt.is_final,
        permanent=permanent,
        error_code=error_code,
        arrival=arrival,
        at=receipt.occurred_at if receipt.time_stated else None,
    )


def _fingerprint(
    receipt: Receipt, identity: tuple[object, ...], segment: int
) -> tuple[object, ...]:
    report = _report_of(receipt, 0)
    return (*identity, segment, report.status, report.final, report.error_code, receipt.occurred_at)


@dataclass
class MessageTruth:
    """Replays a message's script step by step and holds the resulting state."""

    attempts: list[_Attempt] = field(default_factory=list)
    country: str = ""
    conflict: bool = False
    duplicate_count: int = 0
    arrivals: int = 0
    fingerprints: set[tuple[object, ...]] = field(default_factory=set)
    carrier_ids: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    parked: dict[tuple[str, str], list[_Parked]] = field(default_factory=dict)

    def apply(self, step: Step) -> Disposition:
        """Apply one step and return the result the ledger must return for it.

        Raises:
            ValueError: The script is inconsistent (an attempt out of
                sequence, or a step naming an attempt that does not exist).
        """
        if isinstance(step, Submit):
            return self._submit(step)
        if isinstance(step, Accept):
            return self._accept(step)
        if isinstance(step, Receipt):
            return self._receipt(step)
        if isinstance(step, Replay):
            return "replayed"
        assert isinstance(step, WaitForExpiry)
        self.infer_expiry()
        return "ok"

    def _attempt(self, number: int) -> _Attempt:
        if number == 0:
            return self.attempts[-1]
        if not 1 <= number <= len(self.attempts):
            raise ValueError(f"the script names attempt {number} of {len(self.attempts)}")
        return self.attempts[number - 1]

    def _submit(self, step: Submit) -> Disposition:
        if step.attempt != len(self.attempts) + 1:
            raise ValueError(
                f"the script submits attempt {step.attempt} after {len(self.attempts)} attempt(s)"
            )
        segments = [_SUBMITTED] * step.segment_count
        if not self.attempts:
            self.country = region_of(step.destination)
        self.attempts.append(
            _Attempt(step.attempt, step.carrier, step.expires_in_run, segments, step.submitted_at)
        )
        return "ok"

    def _accept(self, step: Accept) -> Disposition:
        attempt = self._attempt(step.attempt)
        if attempt.accepted_at is None:
            attempt.accepted_at = step.accepted_at
        for segment, raw_id in step.segments:
            self._report(attempt, segment, Outcome("ACCEPTED", at=step.accepted_at))
            key = (attempt.carrier, canonical_id(raw_id))
            self.carrier_ids[key] = (attempt.number, segment)
        for _, raw_id in step.segments:
            key = (attempt.carrier, canonical_id(raw_id))
            for waiting in self.parked.pop(key, []):
                self._record(waiting.receipt, key, waiting.arrival)
        return "ok"

    def _receipt(self, receipt: Receipt) -> Disposition:
        self.arrivals += 1
        if receipt.by_carrier_id:
            key = (receipt.connection, canonical_id(receipt.carrier_message_id))
            if key not in self.carrier_ids:
                return self._park(receipt, key)
            return self._record(receipt, key, self.arrivals)
        return self._record(receipt, None, self.arrivals)

    def _park(self, receipt: Receipt, key: tuple[str, str]) -> Disposition:
        fingerprint = _fingerprint(receipt, ("carrier", *key), -1)
        waiting = self.parked.setdefault(key, [])
        if any(p.fingerprint == fingerprint for p in waiting):
            self.duplicate_count += 1
            return "duplicate"
        waiting.append(_Parked(self.arrivals, receipt, fingerprint))
        return "parked"

    def _record(self, receipt: Receipt, key: tuple[str, str] | None, arrival: int) -> Disposition:
        if key is None:
            attempt = self._attempt(receipt.attempt)
            segment = receipt.segment
            identity: tuple[object, ...] = ("message", attempt.number)
        else:
            number, segment = self.carrier_ids[key]
            attempt = self._attempt(number)
            identity = ("carrier", *key)
        fingerprint = _fingerprint(receipt, identity, segment)
        if fingerprint in self.fingerprints:
            self.duplicate_count += 1
            return "duplicate"
        self.fingerprints.add(fingerprint)
        self._report(attempt, segment, _report_of(receipt, arrival))
        return "recorded"

    def _report(self, attempt: _Attempt, segment: int, report: Outcome) -> None:
        numbers = [segment] if segment else list(range(1, len(attempt.segments) + 1))
        for number in numbers:
            held, disagreed = _evaluate(attempt.segments[number - 1], report)
            attempt.segments[number - 1] = held
            self.conflict = self.conflict or disagreed

    def infer_expiry(self) -> None:
        """Apply the ledger's inferred expiry to the latest attempt, unless the message is final."""
        if self.outcome()[0].final:
            return
        report = Outcome("EXPIRED", final=True, permanent=False, inferred=True)
        self._report(self.attempts[-1], 0, report)

    def outcome(self) -> tuple[Outcome, bool, str | None]:
        """Return the message's outcome, whether its error code is defined, and its carrier."""
        delivered = []
        for attempt in self.attempts:
            outcome, _ = _combine(attempt.segments)
            if outcome.final and outcome.status == "DELIVERED":
                delivered.append((outcome, attempt.carrier))
        if delivered:
            carrier = delivered[0][1] if len(delivered) == 1 else None
            return replace(delivered[-1][0], error_code=""), True, carrier
        latest = self.attempts[-1]
        outcome, code_defined = _combine(latest.segments)
        return outcome, code_defined, latest.carrier

    def expected(self) -> ExpectedState:
        """Return the state the ledger must report once its sweeper caught up."""
        if self.attempts[-1].expires_in_run:
            self.infer_expiry()
        outcome, code_defined, carrier = self.outcome()
        credited = self._credited()
        credited_outcome, _ = _combine(credited.segments)
        first = int(self.attempts[0].submitted_at.timestamp())
        return ExpectedState(
            status=outcome.status,
            final=outcome.final,
            attempt_count=len(self.attempts),
            conflict=self.conflict,
            duplicate_count=self.duplicate_count,
            expiry_inferred=outcome.inferred,
            permanent=outcome.permanent,
            error_code=outcome.error_code if code_defined else None,
            carrier=carrier,
            credited_carrier=credited.carrier,
            accepted=credited.accepted_at is not None
            or credited_outcome.status in ("ACCEPTED", "ENROUTE", "DELIVERED"),
            country=self.country,
            cohort_hour=first - first % 3600,
            attempt_carriers=tuple(a.carrier for a in self.attempts),
            latencies=tuple(s for a in self.attempts for s in a.latencies()),
        )

    def _credited(self) -> _Attempt:
        """Return the attempt the statistics credit: the latest delivered, else the latest."""
        for attempt in reversed(self.attempts):
            outcome, _ = _combine(attempt.segments)
            if outcome.final and outcome.status == "DELIVERED":
                return attempt
        return self.attempts[-1]


def expected_outcome(
    steps: tuple[Step, ...] | list[Step],
) -> tuple[ExpectedState, list[Disposition]]:
    """Replay a script and return the final expected state and each step's expected result.

    Raises:
        ValueError: The script is inconsistent.
    """
    truth = MessageTruth()
    results = [truth.apply(step) for step in steps]
    return truth.expected(), results
