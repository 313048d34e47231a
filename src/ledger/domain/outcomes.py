"""Delivery outcomes and the precedence rules between them.

A segment of a message holds one :class:`Outcome`. Each receipt proposes a new
one, and :func:`evaluate_report` decides whether it replaces the held outcome:

- an intermediate status never moves a segment back (SUBMITTED < ACCEPTED <
  ENROUTE < UNKNOWN among non-final statuses), and never replaces a final;
- a carrier final replaces a final that the ledger inferred (expiry);
- a delivery confirmation replaces any other carrier final, because it is
  positive evidence; between other carrier finals the first one to reach the
  ledger stays (a parked receipt counts from its arrival, so it can take the
  place of a final that arrived after it but was applied before);
- every disagreement between carrier finals flags a conflict.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

__all__ = [
    "Effect",
    "Outcome",
    "Status",
    "evaluate_report",
]


class Status(enum.Enum):
    """Lifecycle status of a message, an attempt or a segment."""

    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    ENROUTE = "ENROUTE"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"


# Order of non-final statuses: a report only moves a segment to a higher rank.
_PROGRESS_RANK = {
    Status.SUBMITTED: 0,
    Status.ACCEPTED: 1,
    Status.ENROUTE: 2,
    Status.UNKNOWN: 3,
}

ALWAYS_FINAL = frozenset({Status.DELIVERED, Status.FAILED, Status.REJECTED, Status.EXPIRED})


class Effect(enum.Enum):
    """What a report did to the outcome it was evaluated against."""

    APPLIED = "APPLIED"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    CONFLICT = "CONFLICT"
    SUPERSEDED_INFERRED = "SUPERSEDED_INFERRED"
    OVERRODE_FINAL = "OVERRODE_FINAL"
    PRECEDED_FINAL = "PRECEDED_FINAL"
    NO_CHANGE = "NO_CHANGE"

    @property
    def changes_outcome(self) -> bool:
        """True when the report's outcome replaces the held one."""
        return self in _CHANGING_EFFECTS

    @property
    def is_conflict(self) -> bool:
        """True when carrier finals disagree."""
        return self in (Effect.CONFLICT, Effect.OVERRODE_FINAL, Effect.PRECEDED_FINAL)


_CHANGING_EFFECTS = frozenset(
    {Effect.APPLIED, Effect.SUPERSEDED_INFERRED, Effect.OVERRODE_FINAL, Effect.PRECEDED_FINAL}
)

# When one receipt touches several segments, the event names the strongest effect.
EFFECT_STRENGTH = {
    Effect.NO_CHANGE: 0,
    Effect.OUT_OF_ORDER: 1,
    Effect.APPLIED: 2,
    Effect.SUPERSEDED_INFERRED: 3,
    Effect.CONFLICT: 4,
    Effect.PRECEDED_FINAL: 5,
    Effect.OVERRODE_FINAL: 6,
}


@dataclass(frozen=True)
class Outcome:
    """The status a segment, attempt or message holds, with its evidence.

    Attributes:
        status: Lifecycle status.
        final: No further status is expected.
        permanent: For failures, whether a retry would fail again; None when
            not a failure or unknown.
        error_code: Source error code of this outcome, None for none.
        error_table: Table the error code belongs to.
        inferred: The ledger inferred this outcome (expiry without a receipt).
        at: When the outcome happened according to its source.
        arrived: When the report of it reached the ledger (for a parked
            receipt, its first arrival); decides between disagreeing finals.
    """

    status: Status
    final: bool = False
    permanent: bool | None = None
    error_code: str | None = None
    error_table: str | None = None
    inferred: bool = False
    at: datetime | None = None
    arrived: datetime | None = None

    @property
    def succeeded(self) -> bool:
        """True for a delivery, or an acceptance that its source marks final."""
        return self.final and self.status in (Status.DELIVERED, Status.ACCEPTED)

    @property
    def permanent_failure(self) -> bool:
        """True for a failure that a retry would meet again."""
        return self.final and self.status is Status.FAILED and self.permanent is True

    def same_report(self, other: Outcome) -> bool:
        """True when both name the same status, finality, error code and permanence."""
        return (
            self.status is other.status
            and self.final == other.final
            and (
                self.status is Status.DELIVERED
                or (self.error_code, self.permanent) == (other.error_code, other.permanent)
            )
        )


SUBMITTED = Outcome(Status.SUBMITTED)


def evaluate_report(held: Outcome, report: Outcome) -> tuple[Outcome, Effect]:
    """Decide what a reported outcome does to the held one.

    Args:
        held: The outcome the segment holds now.
        report: The outcome a receipt (or the ledger's expiry) reports.

    Returns:
        The outcome the segment holds afterwards, and the effect.
    """
    if report.final:
        if not held.final:
            return report, Effect.APPLIED
        if held.inferred:
            if report.inferred:
                return held, Effect.NO_CHANGE
            return report, Effect.SUPERSEDED_INFERRED
        if report.inferred:
            # The ledger never overrides what a carrier reported.
            return held, Effect.NO_CHANGE
        if held.same_report(report):
            return held, Effect.NO_CHANGE
        if report.status is Status.DELIVERED and held.status is not Status.DELIVERED:
            return report, Effect.OVERRODE_FINAL
        if (
            held.status is not Status.DELIVERED
            and report.arrived is not None
            and held.arrived is not None
            and report.arrived < held.arrived
        ):
            # A parked report that reached the ledger before the final held.
            return report, Effect.PRECEDED_FINAL
        return held, Effect.CONFLICT

    if held.final:
        return held, Effect.OUT_OF_ORDER
    if held.status is report.status:
        return held, Effect.NO_CHANGE
    if _PROGRESS_RANK[report.status] > _PROGRESS_RANK[held.status]:
        return report, Effect.APPLIED
    return held, Effect.OUT_OF_ORDER


def normalize_report(report: Outcome) -> Outcome:
    """Return the report with the finality rules applied.

    Delivered, failed, rejected and expired are always final; enroute and
    submitted never are; accepted and unknown are final only when the source
    says so. Only failures carry a permanence flag, and an expiry is never
    permanent.
    """
    final = report.final
    if report.status in ALWAYS_FINAL:
        final = True
    elif report.status in (Status.ENROUTE, Status.SUBMITTED):
        final = False
    permanent = report.permanent
    if report.status is Status.EXPIRED:
        permanent = False
    elif report.status not in (Status.FAILED, Status.REJECTED):
        permanent = None
    error_code = report.error_code
    error_table = report.error_table if error_code else None
    if report.status is Status.DELIVERED:
        # A delivery carries no error, whatever code the source attached.
        error_code = None
        error_table = None
    return replace(
        report, final=final, permanent=permanent, error_code=error_code, error_table=error_table
    )
