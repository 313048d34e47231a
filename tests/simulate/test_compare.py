"""Comparing a message's state with the ground truth."""

from __future__ import annotations

from ledger.simulate.compare import compare_state
from ledger.simulate.truth import ExpectedState
from ledger.v1 import events_pb2, ledger_pb2

FAILED = ExpectedState(
    status="FAILED",
    final=True,
    attempt_count=2,
    conflict=False,
    duplicate_count=1,
    expiry_inferred=False,
    permanent=True,
    error_code="11",
    carrier="c2",
)


def failed_state(**fields: object) -> ledger_pb2.MessageState:
    values: dict[str, object] = {
        "status": events_pb2.MESSAGE_STATUS_FAILED,
        "final": True,
        "attempt_count": 2,
        "duplicate_count": 1,
        "permanent": True,
        "error_code": "11",
        "carrier": "c2",
    }
    values.update(fields)
    return ledger_pb2.MessageState(**values)  # type: ignore[arg-type]


def test_compare_equal_state() -> None:
    assert compare_state("m1", FAILED, failed_state()) is None


def test_compare_names_each_difference() -> None:
    mismatch = compare_state(
        "m1", FAILED, failed_state(status=events_pb2.MESSAGE_STATUS_EXPIRED, conflict=True)
    )

    assert mismatch is not None
    assert [d.field for d in mismatch.differences] == ["status", "conflict"]
    assert mismatch.describe() == (
        "m1: status expected FAILED, got EXPIRED; conflict expected False, got True"
    )


def test_compare_permanent_unset() -> None:
    state = failed_state()
    state.ClearField("permanent")

    mismatch = compare_state("m1", FAILED, state)

    assert mismatch is not None
    assert mismatch.describe() == "m1: permanent expected True, got None"


def test_compare_skips_open_fields() -> None:
    open_fields = ExpectedState(
        status="DELIVERED",
        final=True,
        attempt_count=2,
        conflict=False,
        duplicate_count=0,
        expiry_inferred=False,
        permanent=None,
        error_code=None,
        carrier=None,
    )
    state = ledger_pb2.MessageState(
        status=events_pb2.MESSAGE_STATUS_DELIVERED,
        final=True,
        attempt_count=2,
        permanent=False,
        error_code="stale",
        carrier="any",
    )

    assert compare_state("m1", open_fields, state) is None


def test_compare_missing_message() -> None:
    mismatch = compare_state("m1", FAILED, None)

    assert mismatch is not None
    assert mismatch.describe() == "m1: message expected present, got not found"
