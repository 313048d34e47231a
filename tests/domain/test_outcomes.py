from __future__ import annotations

import pytest

from ledger.domain.outcomes import Effect, Outcome, Status, evaluate_report, normalize_report

SUBMITTED = Outcome(Status.SUBMITTED)
ACCEPTED = Outcome(Status.ACCEPTED)
ENROUTE = Outcome(Status.ENROUTE)
DELIVERED = Outcome(Status.DELIVERED, final=True)
FAILED_6 = Outcome(Status.FAILED, final=True, permanent=False, error_code="6")
FAILED_1 = Outcome(Status.FAILED, final=True, permanent=True, error_code="1")
REJECTED = Outcome(Status.REJECTED, final=True, permanent=True, error_code="x")
INFERRED = Outcome(Status.EXPIRED, final=True, permanent=False, inferred=True)
ACCEPTED_FINAL = Outcome(Status.ACCEPTED, final=True)


@pytest.mark.parametrize(
    ("held", "report", "after", "effect"),
    [
        (SUBMITTED, ACCEPTED, ACCEPTED, Effect.APPLIED),
        (ACCEPTED, ENROUTE, ENROUTE, Effect.APPLIED),
        (ENROUTE, ACCEPTED, ENROUTE, Effect.OUT_OF_ORDER),
        (ENROUTE, ENROUTE, ENROUTE, Effect.NO_CHANGE),
        (ENROUTE, DELIVERED, DELIVERED, Effect.APPLIED),
        (DELIVERED, ENROUTE, DELIVERED, Effect.OUT_OF_ORDER),
        (FAILED_6, DELIVERED, DELIVERED, Effect.OVERRODE_FINAL),
        (DELIVERED, FAILED_6, DELIVERED, Effect.CONFLICT),
        (FAILED_6, REJECTED, FAILED_6, Effect.CONFLICT),
        (FAILED_6, FAILED_1, FAILED_6, Effect.CONFLICT),
        (FAILED_6, FAILED_6, FAILED_6, Effect.NO_CHANGE),
        (INFERRED, DELIVERED, DELIVERED, Effect.SUPERSEDED_INFERRED),
        (INFERRED, FAILED_6, FAILED_6, Effect.SUPERSEDED_INFERRED),
        (INFERRED, ENROUTE, INFERRED, Effect.OUT_OF_ORDER),
        (DELIVERED, INFERRED, DELIVERED, Effect.NO_CHANGE),
        (ENROUTE, INFERRED, INFERRED, Effect.APPLIED),
        (ACCEPTED_FINAL, DELIVERED, DELIVERED, Effect.OVERRODE_FINAL),
    ],
)
def test_evaluate_report_table(
    held: Outcome, report: Outcome, after: Outcome, effect: Effect
) -> None:
    assert evaluate_report(held, report) == (after, effect)


def test_conflict_effects_flag_conflict() -> None:
    assert Effect.CONFLICT.is_conflict
    assert Effect.OVERRODE_FINAL.is_conflict
    assert not Effect.SUPERSEDED_INFERRED.is_conflict


def test_normalize_report_forces_finality_rules() -> None:
    assert normalize_report(Outcome(Status.DELIVERED, error_code="5")) == Outcome(
        Status.DELIVERED, final=True
    )
    assert normalize_report(Outcome(Status.ENROUTE, final=True)).final is False
    assert normalize_report(Outcome(Status.EXPIRED, permanent=True)).permanent is False
    assert normalize_report(Outcome(Status.UNKNOWN, final=True)).final is True
    assert normalize_report(Outcome(Status.ACCEPTED, permanent=True)).permanent is None
