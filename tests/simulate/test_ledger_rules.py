"""Lifecycle rules on parked receipts, each as the smallest command sequence
the simulator found when the ledger once broke it: a resend of a receipt that
waited parked is a duplicate, a parked final counts from its arrival, and
repeats received while parked count for the message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.application.commands import RecordAcceptance, RecordReceipt, SubmitMessage
from ledger.application.results import CommandResult, Disposition
from ledger.domain.outcomes import Status
from ledger.runtime import Runtime

T0 = datetime.now(UTC) - timedelta(hours=1)


def submit(message_id: str) -> SubmitMessage:
    return SubmitMessage("rules", message_id, "+447700900123", "SIM", "c1", submitted_at=T0)


def by_carrier(status: Status, carrier_id: str, seconds: int, **fields: object) -> RecordReceipt:
    return RecordReceipt(
        "rules",
        status,
        connection="c1",
        carrier_message_id=carrier_id,
        occurred_at=T0 + timedelta(seconds=seconds),
        **fields,  # type: ignore[arg-type]
    )


def accept(message_id: str, segment: int, carrier_id: str) -> RecordAcceptance:
    return RecordAcceptance(
        "rules", message_id, ((segment, carrier_id),), accepted_at=T0 + timedelta(seconds=1)
    )


def run(runtime: Runtime, *commands: object) -> list[CommandResult]:
    outcomes = [runtime.ledger.execute([command])[0] for command in commands]  # type: ignore[list-item]
    for outcome in outcomes:
        assert isinstance(outcome, CommandResult), outcome
    return outcomes  # type: ignore[return-value]


def test_parked_receipt_resend_is_duplicate(runtime: Runtime) -> None:
    delivered = by_carrier(Status.DELIVERED, "P100", 9)

    results = run(runtime, submit("m1"), delivered, accept("m1", 1, "P100"), delivered)
    message, duplicates = runtime.ledger.get_message("rules", "m1")

    assert results[1].disposition is Disposition.PARKED
    assert results[3].disposition is Disposition.DUPLICATE
    assert duplicates == 1
    assert message.version == 3


def test_parked_final_first_arrival_stays(runtime: Runtime) -> None:
    failed = by_carrier(Status.FAILED, "P200", 9, permanent=True, error_code="1")
    expired = RecordReceipt(
        "rules", Status.EXPIRED, message_id="m2", occurred_at=T0 + timedelta(seconds=10)
    )

    run(runtime, submit("m2"), failed, expired, accept("m2", 0, "P200"))
    message, _ = runtime.ledger.get_message("rules", "m2")

    assert message.conflict
    assert message.outcome.status is Status.FAILED
    assert message.outcome.error_code == "1"


def test_parked_duplicate_counted(runtime: Runtime) -> None:
    delivered = by_carrier(Status.DELIVERED, "P300", 9)

    results = run(runtime, submit("m3"), delivered, delivered, accept("m3", 0, "P300"))
    message, duplicates = runtime.ledger.get_message("rules", "m3")

    assert results[2].disposition is Disposition.DUPLICATE
    assert message.outcome.status is Status.DELIVERED
    assert duplicates == 1
