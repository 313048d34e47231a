"""Latency histogram buckets and percentiles."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.histogram import (
    MIN_MS,
    RELATIVE_ACCURACY,
    ZERO_BUCKET,
    bucket_of,
    bucket_value,
    quantiles,
)


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def histogram(values: list[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        bucket = bucket_of(value)
        counts[bucket] = counts.get(bucket, 0) + 1
    return counts


@given(st.floats(min_value=MIN_MS, max_value=3e9, allow_nan=False))
def test_bucket_value_within_accuracy(value: float) -> None:
    represented = bucket_value(bucket_of(value))
    assert abs(represented - value) <= RELATIVE_ACCURACY * value


def test_bucket_of_small_and_negative_is_zero() -> None:
    assert bucket_of(0.4) == ZERO_BUCKET
    assert bucket_of(-250.0) == ZERO_BUCKET
    assert bucket_value(ZERO_BUCKET) == 0.0
    assert bucket_of(MIN_MS) >= 0


@settings(max_examples=200)
@given(
    st.lists(st.floats(min_value=MIN_MS, max_value=1e8, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]),
)
def test_quantile_within_accuracy_of_exact(values: list[float], q: float) -> None:
    (estimate,) = quantiles(histogram(values), [q])
    exact = exact_quantile(values, q)
    assert estimate is not None
    assert abs(estimate - exact) <= RELATIVE_ACCURACY * exact


@settings(max_examples=100)
@given(
    st.lists(st.floats(min_value=MIN_MS, max_value=1e7, allow_nan=False), min_size=1, max_size=100),
    st.lists(st.floats(min_value=MIN_MS, max_value=1e7, allow_nan=False), min_size=1, max_size=100),
)
def test_merged_histograms_equal_histogram_of_union(left: list[float], right: list[float]) -> None:
    merged = histogram(left)
    for bucket, count in histogram(right).items():
        merged[bucket] = merged.get(bucket, 0) + count
    assert merged == histogram(left + right)
    assert quantiles(merged, [0.5, 0.9, 0.99]) == quantiles(
        histogram(left + right), [0.5, 0.9, 0.99]
    )


def test_quantiles_of_empty_histogram_are_none() -> None:
    assert quantiles({}, [0.5, 0.99]) == [None, None]
    assert quantiles({3: 0}, [0.5]) == [None]


def test_quantiles_reject_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        quantiles({1: 1}, [1.5])
