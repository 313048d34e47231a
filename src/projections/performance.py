"""The carrier performance read model: counts per tenant, carrier, country and hour."""

from __future__ import annotations

from collections.abc import Sequence

from projections.base import Change, Projection, StagedWrites, delta_writes, fold_upsert
from projections.counting import (
    PERF_COUNTERS,
    CauseKey,
    Contribution,
    PerfKey,
    add_into,
    perf_contribution,
)
from projections.fold import MessageFold
from projections.tables import CARRIER_HOURLY, FAILURE_CAUSES, PERF_FOLDS

__all__ = ["PerformanceProjection"]


class PerformanceProjection(Projection):
    """Carrier performance (``rm_carrier_hourly``, ``rm_failure_causes``)."""

    name = "performance"
    specs = (PERF_FOLDS, CARRIER_HOURLY, FAILURE_CAUSES)
    fold_spec = PERF_FOLDS

    def contribution(self, fold: MessageFold) -> Contribution:
        """Return the message's counts."""
        return perf_contribution(fold)

    def stage(self, changes: Sequence[Change]) -> StagedWrites:
        """Compute the count deltas of the changed messages."""
        counters: dict[PerfKey, list[int]] = {}
        causes: dict[CauseKey, list[int]] = {}
        for change in changes:
            after = perf_contribution(change.fold)
            add_into(counters, after.counters.items(), 1)
            add_into(causes, ((k, (v,)) for k, v in after.causes.items()), 1)
            before: Contribution | None = change.before
            if before is not None:
                add_into(counters, before.counters.items(), -1)
                add_into(causes, ((k, (v,)) for k, v in before.causes.items()), -1)
        return StagedWrites(
            [
                fold_upsert(
                    self.table(PERF_FOLDS), [(c.fold.aggregate_id, c.fold_json) for c in changes]
                ),
                *delta_writes(self.table(CARRIER_HOURLY), CARRIER_HOURLY, PERF_COUNTERS, counters),
                *delta_writes(self.table(FAILURE_CAUSES), FAILURE_CAUSES, ("count",), causes),
            ]
        )
