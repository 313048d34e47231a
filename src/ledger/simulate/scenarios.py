"""The scenario families of simulated traffic and how often each occurs.

Each family appends one message's script to a :class:`ScriptBuilder`. Where a
family leaves the outcome open, the carrier's delivery rate and failure mix
decide it, so carriers differ in the summary. ``SCENARIOS`` lists the
families with their weights; the weights add up to 100, so each is the
family's expected share of messages in percent.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from ledger.simulate.carriers import SimCarrier
from ledger.simulate.script import Report, ScriptBuilder
from ledger.simulate.steps import Receipt, Replay, Step

__all__ = ["SCENARIOS", "Scenario", "ScenarioContext"]

ENROUTE = Report("ENROUTE", final=False)
ACCEPTED = Report("ACCEPTED", final=False)
DELIVERED = Report("DELIVERED")


@dataclass(frozen=True)
class ScenarioContext:
    """Inputs of a scenario family beyond the script builder.

    Attributes:
        carrier: Connection of the first attempt.
        carriers: Every simulated connection, for retries on another one.
        validity_seconds: Validity to submit with (short in expiry families).
        expiry_grace_seconds: The server's wait after validity before it
            infers expiry.
    """

    carrier: SimCarrier
    carriers: Sequence[SimCarrier]
    validity_seconds: int
    expiry_grace_seconds: int

    def other_carrier(self, rng: random.Random) -> SimCarrier:
        """Return a connection other than the first attempt's, if there is one."""
        others = [c for c in self.carriers if c.name != self.carrier.name]
        return rng.choice(others) if others else self.carrier

    def retry_carrier(self, rng: random.Random) -> SimCarrier:
        """Return the connection of a retry: the same one (60 %) or another."""
        return self.carrier if rng.random() < 0.6 else self.other_carrier(rng)


@dataclass(frozen=True)
class Scenario:
    """A family of scripts.

    Attributes:
        name: Name used in reports and ``--skip-scenario``.
        weight: Share of messages in percent.
        description: One line for reports.
        build: Appends a script of this family.
        expires: Submitted so long ago that the server's sweeper infers
            expiry during the run unless a final receipt came first.
    """

    name: str
    weight: float
    description: str
    build: Callable[[ScriptBuilder, ScenarioContext], None]
    expires: bool = False


def _maybe_enroute(b: ScriptBuilder, chance: float = 0.6) -> None:
    if b.rng.random() < chance:
        b.receipt(ENROUTE)


def _single_attempt(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.accept()
    _maybe_enroute(b)
    b.receipt(b.carrier_final())


def _permanent_failure(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.accept()
    _maybe_enroute(b, 0.4)
    b.receipt(b.failure(permanent=True))


def _retry(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.accept()
    _maybe_enroute(b, 0.4)
    b.receipt(b.failure(permanent=False))
    for attempt in (2, 3):
        b.submit(ctx.retry_carrier(b.rng), validity_seconds=ctx.validity_seconds)
        b.accept()
        _maybe_enroute(b, 0.4)
        report = b.carrier_final()
        b.receipt(report)
        retryable = report.status == "FAILED" and not report.permanent
        if attempt == 3 or not retryable or b.rng.random() < 0.5:
            return


def _rejected_retry(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    if b.rng.random() < 0.5:
        b.accept()
        b.receipt(b.coded("REJECTED"))
    else:
        # The gateway refused it before the carrier named an id.
        b.receipt(b.coded("REJECTED"), via="message")
    b.submit(ctx.retry_carrier(b.rng), validity_seconds=ctx.validity_seconds)
    b.accept()
    _maybe_enroute(b, 0.4)
    b.receipt(DELIVERED)


def _rejected(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.receipt(b.coded("REJECTED"), via="message")


def _multipart(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    count = b.rng.randint(2, 4)
    b.submit(ctx.carrier, segments=count, validity_seconds=ctx.validity_seconds)
    ids = b.allocate_ids()
    b.accept()
    if 0 in ids:
        # An aggregator that hides segments reports once for all of them.
        _maybe_enroute(b)
        b.receipt(b.carrier_final())
        return

    finals = {n: DELIVERED for n in range(1, count + 1)}
    kind = b.rng.choices(["delivered", "permanent", "transient", "mixed"], [55, 15, 15, 15])[0]
    failing = b.rng.sample(range(1, count + 1), 2)
    if kind == "permanent":
        finals[failing[0]] = b.failure(permanent=True)
    elif kind == "transient":
        finals[failing[0]] = b.failure(permanent=False)
    elif kind == "mixed":
        finals[failing[0]] = b.coded("EXPIRED")
        finals[failing[1]] = b.failure(permanent=False)

    # Each segment's receipts stay in order; the segments interleave at random.
    queues = {n: ([ENROUTE] if b.rng.random() < 0.5 else []) + [finals[n]] for n in finals}
    while queues:
        segment = b.rng.choice(sorted(queues))
        b.receipt(queues[segment].pop(0), segment=segment)
        if not queues[segment]:
            del queues[segment]


def _duplicates(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.accept()
    enroute = b.receipt(ENROUTE)
    if b.rng.random() < 0.5:
        b.resend(enroute)
    final = b.receipt(b.carrier_final())
    for _ in range(b.rng.randint(1, 2)):
        b.resend(b.rng.choice([enroute, final, final]))


def _replays(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.request_id_rate = 1.0
    _single_attempt(b, ctx)
    core = b.steps
    chosen = b.rng.sample(range(len(core)), min(len(core), b.rng.randint(1, 3)))
    after: dict[int, list[int]] = {}
    for index in chosen:
        after.setdefault(b.rng.randint(index, len(core) - 1), []).append(index)
    rebuilt: list[Step] = []
    position: dict[int, int] = {}
    for index, step in enumerate(core):
        position[index] = len(rebuilt)
        rebuilt.append(step)
        rebuilt.extend(Replay(position[original]) for original in after.get(index, []))
    b.steps = rebuilt


def _out_of_order(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.accept()
    _maybe_enroute(b, 0.3)
    final = b.receipt(DELIVERED if b.rng.random() < 0.7 else b.carrier_final())
    late = b.rng.sample([ENROUTE, ACCEPTED], b.rng.randint(1, 2))
    for report in late:
        b.receipt(report, at=b.before(final.occurred_at, 1, 30))


def _parked(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    segments = 2 if b.rng.random() < 0.3 else 1
    b.submit(ctx.carrier, segments=segments, validity_seconds=ctx.validity_seconds)
    b.allocate_ids(whole=False)
    accepted_at = b.acceptance_time()
    # Receipts for segment 1 arrive before the acceptance naming their id.
    if b.rng.random() < 0.6:
        b.receipt(ENROUTE, segment=1, via="carrier")
    b.receipt(b.carrier_final(), segment=1, via="carrier")
    b.accept(at=accepted_at)
    if segments == 2:
        _maybe_enroute(b, 0.5)
        b.receipt(b.carrier_final(), segment=2)
    elif b.rng.random() < 0.3:
        b.receipt(ENROUTE, at=accepted_at)


def _id_variants(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    ids = b.allocate_ids()
    ((segment, carrier_id),) = ids.items()
    padded = b.rng.random() < 0.5
    b.accept(written={segment: "00" + carrier_id if padded else carrier_id})
    variants = [carrier_id.lower(), "0" + carrier_id.lower(), "000" + carrier_id]
    b.receipt(ENROUTE, via="carrier", written_id=b.rng.choice(variants))
    b.receipt(b.carrier_final(), via="carrier", written_id=b.rng.choice(variants))


def _conflicts(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.accept()
    _maybe_enroute(b, 0.3)
    codes = b.rng.sample(ctx.carrier.transient_codes, 2)
    table = ctx.carrier.error_table
    pairs = [
        (b.failure(permanent=False), DELIVERED),
        (b.failure(permanent=False), b.coded("EXPIRED")),
        (DELIVERED, b.failure(permanent=True)),
        (b.coded("REJECTED"), b.failure(permanent=False)),
        (b.coded("EXPIRED"), b.coded("UNKNOWN")),
        (b.coded("UNKNOWN"), DELIVERED),
        (
            Report("FAILED", permanent=False, error_code=codes[0], error_table=table),
            Report("FAILED", permanent=False, error_code=codes[1], error_table=table),
        ),
    ]
    first, second = b.rng.choice(pairs)
    b.receipt(first)
    b.receipt(second)


def _late_attempt_delivery(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.accept()
    _maybe_enroute(b, 0.5)
    b.receipt(b.coded("EXPIRED"))
    b.submit(ctx.other_carrier(b.rng), validity_seconds=ctx.validity_seconds)
    b.accept()
    # Attempt 1's handset confirmation arrives after the retry went out.
    b.receipt(DELIVERED, attempt=1)
    if b.rng.random() < 0.5:
        b.receipt(ENROUTE)


def _inferred_expiry(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    segments = 1 if b.rng.random() < 0.7 else b.rng.randint(2, 3)
    b.submit(
        ctx.carrier, segments=segments, validity_seconds=ctx.validity_seconds, expires_in_run=True
    )
    if b.rng.random() < 0.15:
        return
    ids = b.allocate_ids()
    b.accept()
    if segments == 1 or 0 in ids:
        _maybe_enroute(b, 0.5)
        return
    # Segment 1 ends; the others never get a final receipt.
    b.receipt(b.carrier_final(), segment=1, at=b.advance(1, 20))
    _maybe_enroute(b, 0.5)


def _delivered_after_expiry(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    submitted_at = b.clock
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds, expires_in_run=True)
    b.accept()
    _maybe_enroute(b, 0.5)
    b.wait_for_expiry()
    b.clock = submitted_at + timedelta(seconds=ctx.validity_seconds + ctx.expiry_grace_seconds)
    b.receipt(DELIVERED, at=b.advance(60, 600))


def _accepted_final(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds, expires_in_run=True)
    b.accept()
    _maybe_enroute(b, 0.4)
    final = b.receipt(Report("ACCEPTED", final=True))
    if b.rng.random() < 0.3:
        b.receipt(ENROUTE, at=b.before(final.occurred_at, 1, 10))


def _parked_resent(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.allocate_ids(whole=False)
    accepted_at = b.acceptance_time()
    early = b.receipt(b.carrier_final(), segment=1, via="carrier")
    b.accept(at=accepted_at)
    b.resend(early)


def _parked_conflict(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.allocate_ids()
    accepted_at = b.acceptance_time()
    b.receipt(b.failure(permanent=b.rng.random() < 0.5), via="carrier")
    b.receipt(b.coded("EXPIRED"), via="message")
    b.accept(at=accepted_at)


def _parked_duplicate(b: ScriptBuilder, ctx: ScenarioContext) -> None:
    b.submit(ctx.carrier, validity_seconds=ctx.validity_seconds)
    b.allocate_ids()
    accepted_at = b.acceptance_time()
    early: Receipt = b.receipt(b.carrier_final(), via="carrier")
    b.resend(early)
    b.accept(at=accepted_at)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "single-attempt", 27, "one attempt; the carrier's rates pick the final", _single_attempt
    ),
    Scenario("permanent-failure", 8, "one attempt that fails permanently", _permanent_failure),
    Scenario("retry", 10, "transient failure, then attempt 2 (and maybe 3)", _retry),
    Scenario("rejected-retry", 4, "rejection, then a delivered attempt 2", _rejected_retry),
    Scenario("rejected", 2, "rejected by the gateway, no retry", _rejected),
    Scenario("multipart", 10, "2-4 segments, per-segment or whole-message ids", _multipart),
    Scenario("duplicates", 6, "exact resends of recorded receipts", _duplicates),
    Scenario("replays", 5, "commands resent with their request id", _replays),
    Scenario("out-of-order", 5, "ENROUTE or ACCEPTED after the final", _out_of_order),
    Scenario("parked", 5, "receipts before the acceptance naming their id", _parked),
    Scenario("id-variants", 3, "carrier id in other case or with leading zeros", _id_variants),
    Scenario("conflicts", 4, "two carrier finals that disagree", _conflicts),
    Scenario(
        "late-attempt-delivery",
        2,
        "attempt 1 delivered after attempt 2 went out",
        _late_attempt_delivery,
    ),
    Scenario(
        "inferred-expiry", 3, "no final receipt; the sweeper infers expiry", _inferred_expiry, True
    ),
    Scenario(
        "delivered-after-expiry",
        1,
        "delivery after the inferred expiry",
        _delivered_after_expiry,
        True,
    ),
    Scenario(
        "accepted-final",
        2,
        "final acceptance on a route without handset receipts",
        _accepted_final,
        True,
    ),
    Scenario("parked-resent", 1, "a parked receipt resent after its acceptance", _parked_resent),
    Scenario(
        "parked-conflict",
        1,
        "parked final, then another final before the acceptance",
        _parked_conflict,
    ),
    Scenario(
        "parked-duplicate", 1, "a parked receipt resent before its acceptance", _parked_duplicate
    ),
)
