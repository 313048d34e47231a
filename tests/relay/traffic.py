"""Mixed traffic for the relay tests: every published event type, interleaved.

Step ``k`` of every message runs in round ``k``, so the events of different
messages interleave in the log as concurrent traffic does. Message ids carry a
prefix so that several calls on one ledger name different messages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ledger.application.commands import (
    Command,
    InferExpiry,
    RecordAcceptance,
    RecordReceipt,
    SubmitMessage,
)
from ledger.application.ledger import Ledger
from ledger.application.results import CommandResult
from ledger.domain.identity import message_aggregate_id
from ledger.domain.outcomes import Status

BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TENANTS = ("acme", "globex")
NUMBERS = ("+447700900123", "+4915123456789", "+12025550123")


def message_steps(index: int, prefix: str) -> list[Callable[[], Command]]:
    """Return the commands of message ``index``, one scenario per index modulo 7."""
    tenant = TENANTS[index % 2]
    mid = f"{prefix}{index:06d}"
    at = BASE + timedelta(seconds=index)

    scenario = index % 7
    segments = 3 if scenario == 6 else 1

    def submit(attempt: int = 1, carrier: str = "alpha") -> Command:
        return SubmitMessage(
            tenant=tenant,
            message_id=mid,
            destination=NUMBERS[index % 3],
            sender="ACME",
            carrier=carrier,
            segment_count=segments,
            attempt=attempt,
            submitted_at=at,
        )

    def accept(attempt: int = 0) -> Command:
        ids = (
            ((0, f"{mid}-{attempt}"),)
            if segments == 1
            else tuple((n, f"{mid}-{attempt}-{n}") for n in range(1, segments + 1))
        )
        return RecordAcceptance(
            tenant=tenant, message_id=mid, segments=ids, attempt=attempt, accepted_at=at
        )

    def receipt(status: Status, *, final: bool = True, **fields: object) -> Command:
        return RecordReceipt(
            tenant=tenant,
            status=status,
            message_id=mid,
            final=final,
            occurred_at=at + timedelta(seconds=30),
            **fields,  # type: ignore[arg-type]
        )

    def expire() -> Command:
        return InferExpiry(
            aggregate_id=message_aggregate_id(tenant, mid),
            attempt=1,
            deadline=at + timedelta(hours=1),
            tenant=tenant,
        )

    if scenario == 0:
        return [
            submit,
            accept,
            lambda: receipt(Status.ENROUTE, final=False),
            lambda: receipt(Status.DELIVERED),
        ]
    if scenario == 1:
        return [
            submit,
            accept,
            lambda: receipt(Status.FAILED, permanent=False, error_code="69"),
            lambda: submit(2, "beta"),
            lambda: accept(2),
            lambda: receipt(Status.DELIVERED, attempt=2),
        ]
    if scenario == 2:
        return [submit, lambda: receipt(Status.REJECTED, permanent=True, error_code="R1")]
    if scenario == 3:
        return [submit, accept, expire, lambda: receipt(Status.DELIVERED)]
    if scenario == 4:
        return [submit, accept, lambda: receipt(Status.ACCEPTED)]
    if scenario == 5:
        return [submit, accept, lambda: receipt(Status.UNKNOWN)]
    # Multipart: one segment delivered, then a message-wide failure that
    # affects the segments differently.
    return [
        submit,
        accept,
        lambda: receipt(Status.DELIVERED, segment=2),
        lambda: receipt(Status.FAILED, permanent=True, error_code="1"),
    ]


def run_traffic(ledger: Ledger, messages: int, *, prefix: str = "m", batch: int = 500) -> None:
    """Record ``messages`` messages' traffic round by round, ``batch`` commands per call."""
    planned = [message_steps(index, prefix) for index in range(messages)]
    rounds = max(len(steps) for steps in planned)
    for round_index in range(rounds):
        commands = [steps[round_index]() for steps in planned if round_index < len(steps)]
        for start in range(0, len(commands), batch):
            chunk = commands[start : start + batch]
            for command, outcome in zip(chunk, ledger.execute(chunk), strict=True):
                assert isinstance(outcome, CommandResult), (command, outcome)
