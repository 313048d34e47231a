"""The sliding delivery ratio over fixed time buckets."""

from __future__ import annotations

import pytest

from ledger.telemetry.window import SlidingRatio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ratio_per_carrier() -> None:
    clock = Clock()
    window = SlidingRatio(900, 60, clock)
    for delivered in (True, True, True, False):
        window.add("a", delivered)
    window.add("b", False)

    assert window.ratios() == {"a": (0.75, 4), "b": (0.0, 1)}


def test_ratio_forgets_old_buckets() -> None:
    clock = Clock()
    window = SlidingRatio(900, 60, clock)
    window.add("a", False)
    clock.now += 600
    window.add("a", True)

    assert window.ratios() == {"a": (0.5, 2)}
    clock.now += 400
    assert window.ratios() == {"a": (1.0, 1)}
    clock.now += 900
    assert window.ratios() == {}


def test_ratio_rejects_bad_window() -> None:
    with pytest.raises(ValueError, match="must both be positive"):
        SlidingRatio(0)
