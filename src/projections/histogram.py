"""Mergeable latency histograms: logarithmic buckets with a bounded relative error.

A latency in milliseconds maps to an integer bucket with the logarithmic key
mapping of DDSketch (``ddsketch.mapping.LogarithmicMapping``). Counts per bucket
are stored as rows, so histograms of any set of hours, carriers or countries
merge by adding counts, and a percentile read from merged buckets is within
``RELATIVE_ACCURACY`` of the exact value for latencies of at least ``MIN_MS``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ddsketch.mapping import LogarithmicMapping

__all__ = [
    "MIN_MS",
    "RELATIVE_ACCURACY",
    "ZERO_BUCKET",
    "bucket_of",
    "bucket_value",
    "quantiles",
]

RELATIVE_ACCURACY = 0.01
"""Largest relative error of a percentile, for latencies of at least ``MIN_MS``."""

MIN_MS = 1.0
"""Latencies below one millisecond, negative ones included, count as zero."""

ZERO_BUCKET = -1
"""Bucket of latencies below ``MIN_MS``; every other bucket is 0 or more."""

_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)


def bucket_of(milliseconds: float) -> int:
    """Return the bucket of a latency in milliseconds."""
    if milliseconds < MIN_MS:
        return ZERO_BUCKET
    # The mapping's key of MIN_MS is 0, so real buckets never meet ZERO_BUCKET.
    return int(_MAPPING.key(milliseconds))


def bucket_value(bucket: int) -> float:
    """Return the latency in milliseconds that represents a bucket."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return float(_MAPPING.value(bucket))


def quantiles(counts: Mapping[int, int], qs: Sequence[float]) -> list[float | None]:
    """Return the latency at each quantile of a histogram, None when it is empty.

    The rank of quantile ``q`` among ``n`` samples is ``floor(q * (n - 1))``
    counted from 0 (the lower quantile, as DDSketch defines it), so the result
    lies in the bucket of the exact sample of that rank.

    Args:
        counts: Sample count per bucket; zero and negative counts are ignored.
        qs: Quantiles between 0 and 1.
    """
    buckets = sorted((b, c) for b, c in counts.items() if c > 0)
    total = sum(c for _, c in buckets)
    if total == 0:
        return [None for _ in qs]
    results: list[float | None] = []
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} is outside 0..1")
        rank = math.floor(q * (total - 1))
        seen = 0
        for bucket, count in buckets:
            seen += count
            if seen > rank:
                results.append(bucket_value(bucket))
                break
    return results
