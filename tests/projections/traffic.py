"""Deterministic mixed traffic for the read-model tests, written with ``Ledger.execute``.

Each message follows one scenario, a list of steps; step ``k`` of every message
runs in round ``k``, so the events of different messages interleave in the log
the way concurrent traffic does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

TENANT = "acme"
NUMBERS = {"GB": "+447700900123", "DE": "+4915123456789", "US": "+12025550123"}
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

Step = Callable[[], Command]


@dataclass(frozen=True)
class Plan:
    """One message's scenario and steps."""

    message_id: str
    scenario: str
    steps: list[Step]


def submit(
    message_id: str,
    carrier: str,
    at: datetime,
    *,
    country: str = "GB",
    attempt: int = 1,
    segments: int = 1,
    tenant: str = TENANT,
) -> SubmitMessage:
    return SubmitMessage(
        tenant=tenant,
        message_id=message_id,
        destination=NUMBERS[country],
        sender="ACME",
        carrier=carrier,
        segment_count=segments,
        attempt=attempt,
        submitted_at=at,
    )


def accept(
    message_id: str,
    at: datetime,
    *,
    attempt: int = 0,
    segments: int = 1,
    tenant: str = TENANT,
) -> RecordAcceptance:
    ids = (
        ((0, f"{message_id}-{attempt}"),)
        if segments == 1
        else tuple((n, f"{message_id}-{attempt}-{n}") for n in range(1, segments + 1))
    )
    return RecordAcceptance(
        tenant=tenant, message_id=message_id, segments=ids, attempt=attempt, accepted_at=at
    )


def receipt(
    message_id: str,
    status: Status,
    at: datetime,
    *,
    attempt: int = 0,
    segment: int = 0,
    final: bool = False,
    permanent: bool | None = None,
    code: str | None = None,
    tenant: str = TENANT,
) -> RecordReceipt:
    return RecordReceipt(
        tenant=tenant,
        status=status,
        message_id=message_id,
        attempt=attempt,
        segment=segment,
        final=final,
        permanent=permanent,
        error_code=code,
        occurred_at=at,
    )


def expire(message_id: str, attempt: int, deadline: datetime, tenant: str = TENANT) -> InferExpiry:
    return InferExpiry(
        aggregate_id=message_aggregate_id(tenant, message_id),
        attempt=attempt,
        deadline=deadline,
        tenant=tenant,
    )


SCENARIOS = (
    "delivered",
    "failed_permanent",
    "retry_other_carrier",
    "rejected",
    "expiry_then_delivered",
    "multipart",
    "accepted_final",
    "conflict",
    "pending",
    "unknown_final",
)


def plan_message(index: int, rng: random.Random, carriers: Sequence[str]) -> Plan:
    """Return the scenario of message ``index``."""
    scenario = SCENARIOS[index % len(SCENARIOS)]
    mid = f"m{index:06d}"
    carrier = carriers[rng.randrange(len(carriers))]
    other = carriers[(carriers.index(carrier) + 1) % len(carriers)]
    country = ("GB", "DE", "US")[rng.randrange(3)]
    t0 = BASE + timedelta(seconds=index * 7)
    ok = t0 + timedelta(milliseconds=rng.randrange(50, 900))
    done = ok + timedelta(milliseconds=rng.randrange(500, 60_000))
    S = Status

    def sub() -> Command:
        return submit(mid, carrier, t0, country=country)

    def acc() -> Command:
        return accept(mid, ok)

    steps: list[Step]
    if scenario == "delivered":
        steps = [
            sub,
            acc,
            lambda: receipt(mid, S.ENROUTE, ok + timedelta(milliseconds=10)),
            lambda: receipt(mid, S.DELIVERED, done, final=True),
        ]
    elif scenario == "failed_permanent":
        steps = [
            sub,
            acc,
            lambda: receipt(mid, S.FAILED, done, final=True, permanent=True, code="1"),
        ]
    elif scenario == "retry_other_carrier":
        t1 = done + timedelta(seconds=5)
        steps = [
            sub,
            acc,
            lambda: receipt(mid, S.FAILED, done, final=True, permanent=False, code="69"),
            lambda: submit(mid, other, t1, country=country, attempt=2),
            lambda: accept(mid, t1 + timedelta(milliseconds=300), attempt=2),
            lambda: receipt(mid, S.DELIVERED, t1 + timedelta(seconds=3), attempt=2, final=True),
        ]
    elif scenario == "rejected":
        steps = [sub, lambda: receipt(mid, S.REJECTED, ok, final=True, permanent=True, code="R1")]
    elif scenario == "expiry_then_delivered":
        steps = [
            sub,
            acc,
            lambda: expire(mid, 1, t0 + timedelta(hours=1)),
            lambda: receipt(mid, S.DELIVERED, done, final=True),
        ]
    elif scenario == "multipart":
        steps = [
            lambda: submit(mid, carrier, t0, country=country, segments=3),
            lambda: accept(mid, ok, attempt=1, segments=3),
            lambda: receipt(mid, S.DELIVERED, done, attempt=1, segment=1, final=True),
            lambda: receipt(
                mid, S.DELIVERED, done + timedelta(seconds=2), attempt=1, segment=3, final=True
            ),
            lambda: receipt(
                mid, S.DELIVERED, done + timedelta(seconds=1), attempt=1, segment=2, final=True
            ),
        ]
    elif scenario == "accepted_final":
        steps = [sub, acc, lambda: receipt(mid, S.ACCEPTED, done, final=True)]
    elif scenario == "conflict":
        steps = [
            sub,
            acc,
            lambda: receipt(mid, S.FAILED, done, final=True, permanent=False, code="34"),
            lambda: receipt(mid, S.DELIVERED, done + timedelta(seconds=1), final=True),
        ]
    elif scenario == "pending":
        steps = [sub, acc]
    else:
        steps = [sub, acc, lambda: receipt(mid, S.UNKNOWN, done, final=True)]
    return Plan(mid, scenario, steps)


def plans(
    count: int, seed: int = 7, carriers: Sequence[str] = ("alpha", "beta", "gamma")
) -> list[Plan]:
    rng = random.Random(seed)
    return [plan_message(i, rng, carriers) for i in range(count)]


def run_rounds(ledger: Ledger, planned: Sequence[Plan], batch: int = 200) -> None:
    """Execute step k of every message in round k, ``batch`` commands per call."""
    rounds = max(len(p.steps) for p in planned)
    for k in range(rounds):
        commands = [p.steps[k]() for p in planned if k < len(p.steps)]
        for start in range(0, len(commands), batch):
            chunk = commands[start : start + batch]
            for command, outcome in zip(chunk, ledger.execute(chunk), strict=True):
                assert isinstance(outcome, CommandResult), (command, outcome)
