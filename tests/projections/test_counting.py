"""Counting rules of carrier performance and latency, on SQLite and PostgreSQL.

Each test runs the projector after every step, so outcomes that change move
counts between rows across batches, as they do live.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from ledger.application.commands import Command
from ledger.application.results import CommandResult
from ledger.domain.outcomes import Status
from ledger.runtime import Runtime
from projections.database import Connection
from projections.histogram import RELATIVE_ACCURACY
from projections.queries import StatsQuery, carrier_performance, latency
from projections.runner import Projector
from tests.projections.helpers import projector, rows, target_of
from tests.projections.traffic import BASE, accept, expire, receipt, submit

HOUR = int(BASE.timestamp()) - int(BASE.timestamp()) % 3600
S = Status


class Steps:
    """Runs commands one at a time and projects after each."""

    def __init__(self, runtime: Runtime, built: Projector, conn: Connection) -> None:
        self.runtime = runtime
        self.projector = built
        self.conn = conn

    def __call__(self, *commands: Command) -> None:
        for command in commands:
            outcome = self.runtime.ledger.execute([command])[0]
            assert isinstance(outcome, CommandResult), outcome
        self.projector.catch_up()

    def counters(self, carrier: str) -> dict[str, Any]:
        found = rows(self.conn, "rm_carrier_hourly", "WHERE carrier = %s", (carrier,))
        assert len(found) <= 1
        return found[0] if found else {}

    def causes(self) -> list[tuple[str, str, str, int, int]]:
        return sorted(
            (r["carrier"], r["status"], r["error_code"], r["permanent"], r["count"])
            for r in rows(self.conn, "rm_failure_causes")
        )

    def samples(self) -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        for r in rows(self.conn, "rm_latency_buckets"):
            key = (r["carrier"], r["metric"])
            found[key] = found.get(key, 0) + r["count"]
        return found


@pytest.fixture
def steps(runtime: Runtime) -> Iterator[Steps]:
    built = projector(runtime)
    conn = target_of(runtime).connect()
    try:
        yield Steps(runtime, built, conn)
    finally:
        conn.close()
        built.close()


def test_retry_other_carrier_moves_message(steps: Steps) -> None:
    t0 = BASE
    steps(submit("r1", "alpha", t0), accept("r1", t0 + timedelta(seconds=1)))
    steps(
        receipt("r1", S.FAILED, t0 + timedelta(seconds=9), final=True, permanent=False, code="69")
    )
    alpha = steps.counters("alpha")
    assert alpha["submitted"] == 1
    assert alpha["failed_transient"] == 1
    assert steps.causes() == [("alpha", "FAILED", "69", 0, 1)]

    t1 = t0 + timedelta(minutes=90)
    steps(submit("r1", "beta", t1, attempt=2))
    alpha = steps.counters("alpha")
    beta = steps.counters("beta")
    assert alpha["submitted"] == 0
    assert alpha["failed_transient"] == 0
    assert alpha["attempts"] == 1
    assert alpha["retried"] == 1
    assert beta["submitted"] == 1
    assert beta["attempts"] == 1
    assert steps.causes() == []

    steps(accept("r1", t1 + timedelta(seconds=2), attempt=2))
    steps(receipt("r1", S.DELIVERED, t1 + timedelta(seconds=12), attempt=2, final=True))
    beta = steps.counters("beta")
    assert beta["delivered"] == 1
    assert beta["accepted"] == 1
    assert beta["hour"] == HOUR, "the retry still counts in the cohort of the first submission"
    assert steps.samples() == {
        ("alpha", "submit_to_accepted"): 1,
        ("beta", "submit_to_accepted"): 1,
        ("beta", "submit_to_delivered"): 1,
        ("beta", "accepted_to_delivered"): 1,
    }


def test_late_delivery_of_first_attempt_credits_it(steps: Steps) -> None:
    t0 = BASE
    steps(submit("r2", "alpha", t0), accept("r2", t0 + timedelta(seconds=1)))
    steps(receipt("r2", S.FAILED, t0 + timedelta(seconds=5), final=True, permanent=False))
    steps(submit("r2", "beta", t0 + timedelta(seconds=30), attempt=2))
    # A delivery confirmed for attempt 1 makes the message delivered, on alpha.
    steps(receipt("r2", S.DELIVERED, t0 + timedelta(seconds=40), attempt=1, final=True))
    alpha = steps.counters("alpha")
    beta = steps.counters("beta")
    assert alpha["submitted"] == 1
    assert alpha["delivered"] == 1
    assert alpha["retried"] == 1
    assert beta.get("submitted", 0) == 0
    assert beta["attempts"] == 1


def test_delivery_overrides_failure_without_double_count(steps: Steps) -> None:
    t0 = BASE
    steps(submit("c1", "alpha", t0), accept("c1", t0 + timedelta(seconds=1)))
    steps(receipt("c1", S.FAILED, t0 + timedelta(seconds=3), final=True, permanent=True, code="1"))
    assert steps.counters("alpha")["failed_permanent"] == 1
    steps(receipt("c1", S.DELIVERED, t0 + timedelta(seconds=4), final=True))
    alpha = steps.counters("alpha")
    assert alpha["submitted"] == 1
    assert alpha["delivered"] == 1
    assert alpha["failed_permanent"] == 0
    assert alpha["conflicts"] == 1
    assert steps.causes() == []


def test_first_failure_stays_against_later_expiry(steps: Steps) -> None:
    t0 = BASE
    steps(submit("c2", "alpha", t0), accept("c2", t0 + timedelta(seconds=1)))
    steps(receipt("c2", S.REJECTED, t0 + timedelta(seconds=3), final=True, code="R9"))
    steps(receipt("c2", S.EXPIRED, t0 + timedelta(seconds=4), final=True))
    alpha = steps.counters("alpha")
    assert alpha["rejected"] == 1
    assert alpha["expired"] == 0
    assert alpha["conflicts"] == 1
    assert steps.causes() == [("alpha", "REJECTED", "R9", 0, 1)]


def test_carrier_final_replaces_inferred_expiry(steps: Steps) -> None:
    t0 = BASE
    steps(submit("e1", "alpha", t0), accept("e1", t0 + timedelta(seconds=1)))
    steps(expire("e1", 1, t0 + timedelta(hours=2)))
    alpha = steps.counters("alpha")
    assert alpha["expired"] == 1
    assert alpha["expired_inferred"] == 1
    steps(receipt("e1", S.DELIVERED, t0 + timedelta(minutes=5), final=True))
    alpha = steps.counters("alpha")
    assert alpha["expired"] == 0
    assert alpha["expired_inferred"] == 0
    assert alpha["delivered"] == 1
    assert steps.samples()[("alpha", "submit_to_delivered")] == 1


def test_multipart_delivered_when_every_segment_is(steps: Steps) -> None:
    t0 = BASE
    steps(submit("mp", "alpha", t0, segments=3), accept("mp", t0, attempt=1, segments=3))
    steps(receipt("mp", S.DELIVERED, t0 + timedelta(seconds=10), attempt=1, segment=1, final=True))
    steps(receipt("mp", S.DELIVERED, t0 + timedelta(seconds=30), attempt=1, segment=3, final=True))
    alpha = steps.counters("alpha")
    assert alpha["delivered"] == 0
    assert alpha["submitted"] == 1
    steps(receipt("mp", S.DELIVERED, t0 + timedelta(seconds=20), attempt=1, segment=2, final=True))
    assert steps.counters("alpha")["delivered"] == 1
    conn = steps.conn
    group = latency(conn, StatsQuery(HOUR, HOUR + 3600))[0]
    delivered = next(m for m in group.metrics if m.metric == "submit_to_delivered")
    assert delivered.count == 1
    # The message is delivered when its last segment is: 30 s after submission.
    assert delivered.p50 == pytest.approx(30_000, rel=RELATIVE_ACCURACY)


def test_multipart_permanent_failure_of_one_segment(steps: Steps) -> None:
    t0 = BASE
    steps(submit("mf", "alpha", t0, segments=2), accept("mf", t0, attempt=1, segments=2))
    steps(receipt("mf", S.DELIVERED, t0 + timedelta(seconds=5), attempt=1, segment=1, final=True))
    steps(
        receipt(
            "mf",
            S.FAILED,
            t0 + timedelta(seconds=6),
            attempt=1,
            segment=2,
            final=True,
            permanent=True,
            code="11",
        )
    )
    alpha = steps.counters("alpha")
    assert alpha["failed_permanent"] == 1
    assert alpha["delivered"] == 0
    assert steps.causes() == [("alpha", "FAILED", "11", 1, 1)]


def test_accepted_final_is_a_final_outcome(steps: Steps) -> None:
    t0 = BASE
    steps(submit("af", "alpha", t0), accept("af", t0 + timedelta(seconds=1)))
    steps(submit("pd", "alpha", t0 + timedelta(seconds=2)))
    steps(receipt("af", S.ACCEPTED, t0 + timedelta(seconds=3), final=True))
    alpha = steps.counters("alpha")
    assert alpha["accepted_final"] == 1
    assert alpha["submitted"] == 2
    group = carrier_performance(steps.conn, StatsQuery(HOUR, HOUR + 3600))[0]
    assert group.pending == 1
    assert group.finals == 1
    assert group.delivery_rate == 0.0


def test_pending_and_rate_follow_outcomes(steps: Steps) -> None:
    t0 = BASE
    for n in range(4):
        steps(submit(f"p{n}", "alpha", t0 + timedelta(seconds=n)))
    steps(receipt("p0", S.DELIVERED, t0 + timedelta(seconds=9), final=True))
    steps(receipt("p1", S.FAILED, t0 + timedelta(seconds=9), final=True, permanent=True))
    steps(receipt("p2", S.ENROUTE, t0 + timedelta(seconds=9)))
    group = carrier_performance(steps.conn, StatsQuery(HOUR, HOUR + 3600))[0]
    assert group.counters["submitted"] == 4
    assert group.pending == 2
    assert group.delivery_rate == 0.5


def test_cohort_hour_takes_later_outcome(steps: Steps) -> None:
    t0 = BASE + timedelta(minutes=59)
    steps(submit("h1", "alpha", t0))
    steps(receipt("h1", S.DELIVERED, t0 + timedelta(hours=3), final=True))
    found = rows(steps.conn, "rm_carrier_hourly")
    assert [(r["hour"], r["delivered"]) for r in found] == [(HOUR, 1)]
