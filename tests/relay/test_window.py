"""The in-flight window: acknowledged position and per-message predecessors."""

from __future__ import annotations

import pytest

from ledger.relay.window import InFlightWindow


def test_window_acked_position_waits_for_oldest():
    window = InFlightWindow(10)
    first = window.add(11, "a", "id-11")
    second = window.add(12, "b", "id-12")
    third = window.add(14, "c", "id-14")

    window.ack(second)
    window.ack(third)
    assert window.acked_position == 10

    window.ack(first)
    assert window.acked_position == 14
    assert len(window) == 0


def test_window_skip_counts_unpublished_entries():
    window = InFlightWindow(0)
    entry = window.add(1, "a", "id-1")
    window.skip_to(5)
    assert window.acked_position == 0

    window.ack(entry)
    assert window.acked_position == 5

    window.skip_to(9)
    assert window.acked_position == 9


def test_window_pending_for_latest_per_message():
    window = InFlightWindow(0)
    first = window.add(1, "a", "id-1")
    assert window.pending_for("a") is first
    second = window.add(2, "a", "id-2")
    assert window.pending_for("a") is second

    window.ack(first)
    assert window.pending_for("a") is second
    window.ack(second)
    assert window.pending_for("a") is None


def test_window_rejects_position_going_back():
    window = InFlightWindow(5)
    window.add(6, "a", "id-6")
    with pytest.raises(ValueError, match="not above"):
        window.add(6, "b", "id-6b")


def test_window_clear_falls_back_to_acked():
    window = InFlightWindow(0)
    acked = window.add(1, "a", "id-1")
    window.add(2, "b", "id-2")
    window.ack(acked)

    dropped = window.clear()
    assert [entry.position for entry in dropped] == [2]
    assert window.acked_position == 1
    assert window.dispatched_position == 1
    assert window.pending_for("b") is None
    window.add(2, "b", "id-2")


def test_window_ack_twice_is_harmless():
    window = InFlightWindow(0)
    entry = window.add(1, "a", "id-1")
    window.ack(entry)
    window.ack(entry)
    assert window.acked_position == 1
