"""The counting rules of the statistics read models, as pure functions of a fold.

Each rule returns a message's whole contribution to the statistics tables. The
projections subtract the contribution a message had before a batch of events
and add the one it has after, so an outcome that changes (a carrier final
replacing an inferred expiry, a delivery overriding a failure, a retry on
another carrier) moves counts instead of adding them, and a rebuild yields the
same rows as live updating. The rules (see ``docs/projections.md``):

- Every count lands in the cohort of the message: the UTC hour of its first
  submission, with the tenant and the destination country.
- Message counts (submitted, accepted and the outcomes) go to the carrier of
  the attempt that produced the message's outcome: the latest delivered
  attempt, else the latest attempt. A retry moves the message to the carrier
  of the new attempt.
- Attempt counts (``attempts``, ``retried``) go to the carrier of each attempt,
  so a carrier keeps the attempts it lost to a retry.
- Latency samples are per attempt, on the attempt's carrier, from the source
  times of its submission, its first acceptance and its delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from ledger.domain.outcomes import Status
from projections.fold import MessageFold, to_micros
from projections.histogram import bucket_of

__all__ = [
    "FINAL_COUNTERS",
    "LATENCY_METRICS",
    "PERF_COUNTERS",
    "CauseKey",
    "Contribution",
    "LatencyKey",
    "PerfKey",
    "add_into",
    "final_outcomes",
    "latency_contribution",
    "perf_contribution",
]

PERF_COUNTERS = (
    "submitted",
    "accepted",
    "delivered",
    "failed_permanent",
    "failed_transient",
    "rejected",
    "expired",
    "expired_inferred",
    "unknown",
    "accepted_final",
    "conflicts",
    "attempts",
    "retried",
)
"""Counter columns of a carrier performance row, in storage order."""

_INDEX = {name: i for i, name in enumerate(PERF_COUNTERS)}

LATENCY_METRICS = ("submit_to_accepted", "submit_to_delivered", "accepted_to_delivered")
"""Latency metrics, each measured within one attempt."""

PerfKey = tuple[str, str, str, int]
"""(tenant, carrier, country, cohort hour)."""

CauseKey = tuple[str, str, str, int, str, str, int]
"""(tenant, carrier, country, cohort hour, status, error code, permanent 0/1)."""

LatencyKey = tuple[str, str, str, int, str, int]
"""(tenant, carrier, country, cohort hour, metric, bucket)."""

FINAL_COUNTERS = (
    "delivered",
    "failed_permanent",
    "failed_transient",
    "rejected",
    "expired",
    "unknown",
    "accepted_final",
)
"""Counters of final outcomes: each message with a final outcome is in exactly one."""


@dataclass(frozen=True)
class Contribution:
    """Everything one message adds to the carrier performance tables.

    Attributes:
        counters: Counter vector (in ``PERF_COUNTERS`` order) per row key.
        causes: Count per failure cause key.
    """

    counters: dict[PerfKey, tuple[int, ...]]
    causes: dict[CauseKey, int]


def _vector(**values: int) -> list[int]:
    vector = [0] * len(PERF_COUNTERS)
    for name, value in values.items():
        vector[_INDEX[name]] = value
    return vector


def perf_contribution(fold: MessageFold) -> Contribution:
    """Return the carrier performance counts of one message."""
    hour = fold.cohort_hour
    credited = fold.outcome_attempt
    outcome = credited.outcome
    status = outcome.status

    counts: dict[PerfKey, list[int]] = {}
    key: PerfKey = (fold.tenant, credited.carrier, fold.country, hour)
    message = counts.setdefault(key, _vector())
    message[_INDEX["submitted"]] = 1
    took_it = credited.accepted_at is not None or status in (
        Status.ACCEPTED,
        Status.ENROUTE,
        Status.DELIVERED,
    )
    message[_INDEX["accepted"]] = int(took_it)
    message[_INDEX["conflicts"]] = int(fold.conflict)

    causes: dict[CauseKey, int] = {}
    if outcome.final:
        counter = _final_counter(status, outcome.permanent)
        message[_INDEX[counter]] = 1
        if status is Status.EXPIRED and outcome.inferred:
            message[_INDEX["expired_inferred"]] = 1
        if status not in (Status.DELIVERED, Status.ACCEPTED):
            cause: CauseKey = (
                *key,
                status.value,
                outcome.error_code or "",
                int(outcome.permanent is True),
            )
            causes[cause] = 1

    last = len(fold.attempts)
    for attempt in fold.attempts:
        row = counts.setdefault((fold.tenant, attempt.carrier, fold.country, hour), _vector())
        row[_INDEX["attempts"]] += 1
        if attempt.number < last:
            row[_INDEX["retried"]] += 1
    return Contribution({k: tuple(v) for k, v in counts.items()}, causes)


def _final_counter(status: Status, permanent: bool | None) -> str:
    if status is Status.DELIVERED:
        return "delivered"
    if status is Status.FAILED:
        return "failed_permanent" if permanent else "failed_transient"
    if status is Status.REJECTED:
        return "rejected"
    if status is Status.EXPIRED:
        return "expired"
    if status is Status.ACCEPTED:
        return "accepted_final"
    return "unknown"


def final_outcomes(counters: dict[str, int]) -> int:
    """Return the number of messages with a final outcome in a counter row."""
    return sum(counters[name] for name in FINAL_COUNTERS)


def latency_contribution(fold: MessageFold) -> dict[LatencyKey, int]:
    """Return the latency samples of one message, as a count per bucket key."""
    hour = fold.cohort_hour
    samples: dict[LatencyKey, int] = {}

    def add(carrier: str, metric: str, micros: int) -> None:
        key: LatencyKey = (
            fold.tenant,
            carrier,
            fold.country,
            hour,
            metric,
            bucket_of(micros / 1000),
        )
        samples[key] = samples.get(key, 0) + 1

    for attempt in fold.attempts:
        submitted = to_micros(attempt.submitted_at)
        accepted = None if attempt.accepted_at is None else to_micros(attempt.accepted_at)
        if accepted is not None:
            add(attempt.carrier, "submit_to_accepted", accepted - submitted)
        outcome = attempt.outcome
        if outcome.final and outcome.status is Status.DELIVERED and outcome.at is not None:
            delivered = to_micros(outcome.at)
            add(attempt.carrier, "submit_to_delivered", delivered - submitted)
            if accepted is not None:
                add(attempt.carrier, "accepted_to_delivered", delivered - accepted)
    return samples


K = TypeVar("K")


def add_into(
    target: dict[K, list[int]], rows: Iterable[tuple[K, tuple[int, ...]]], sign: int
) -> None:
    """Add (``sign`` 1) or subtract (-1) counter vectors into ``target``."""
    for key, vector in rows:
        current = target.get(key)
        if current is None:
            target[key] = [sign * v for v in vector]
        else:
            for i, v in enumerate(vector):
                current[i] += sign * v
