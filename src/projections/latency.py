"""The latency read model: histogram buckets per tenant, carrier, country, hour and metric."""

from __future__ import annotations

from collections.abc import Sequence

from projections.base import Change, Projection, StagedWrites, delta_writes, fold_upsert
from projections.counting import LatencyKey, latency_contribution
from projections.fold import MessageFold
from projections.tables import LATENCY_BUCKETS, LATENCY_FOLDS

__all__ = ["LatencyProjection"]


class LatencyProjection(Projection):
    """Latency histograms (``rm_latency_buckets``)."""

    name = "latency"
    specs = (LATENCY_FOLDS, LATENCY_BUCKETS)
    fold_spec = LATENCY_FOLDS

    def contribution(self, fold: MessageFold) -> dict[LatencyKey, int]:
        """Return the message's latency samples."""
        return latency_contribution(fold)

    def stage(self, changes: Sequence[Change]) -> StagedWrites:
        """Compute the bucket count deltas of the changed messages."""
        buckets: dict[LatencyKey, list[int]] = {}
        for change in changes:
            for key, count in latency_contribution(change.fold).items():
                buckets.setdefault(key, [0])[0] += count
            before: dict[LatencyKey, int] | None = change.before
            for key, count in (before or {}).items():
                buckets.setdefault(key, [0])[0] -= count
        return StagedWrites(
            [
                fold_upsert(
                    self.table(LATENCY_FOLDS), [(c.fold.aggregate_id, c.fold_json) for c in changes]
                ),
                *delta_writes(self.table(LATENCY_BUCKETS), LATENCY_BUCKETS, ("count",), buckets),
            ]
        )
