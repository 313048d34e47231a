"""The current-state model agrees with the aggregate, and statistics with exact values."""

from __future__ import annotations

import math
from collections import defaultdict

from google.protobuf.timestamp_pb2 import Timestamp

from ledger.domain.outcomes import Status
from ledger.protocol.events import STATUS_TO_PROTO
from ledger.protocol.states import message_state
from ledger.runtime import Runtime
from ledger.storage.records import to_micros
from projections.histogram import RELATIVE_ACCURACY
from projections.queries import (
    MessageQuery,
    StatsQuery,
    carrier_performance,
    latency,
    list_messages,
)
from tests.projections.helpers import projector, target_of
from tests.projections.traffic import BASE, TENANT, plans, run_rounds

_STATUS_NAMES = {number: name for name, number in STATUS_TO_PROTO.items()}


def micros(state: object, field: str) -> int | None:
    if not state.HasField(field):  # type: ignore[attr-defined]
        return None
    value: Timestamp = getattr(state, field)
    return value.seconds * 1_000_000 + value.nanos // 1000


def test_messages_rows_match_get_message(runtime: Runtime) -> None:
    planned = plans(60)
    run_rounds(runtime.ledger, planned)
    built = projector(runtime, batch_size=37)
    built.catch_up()
    conn = target_of(runtime).connect()
    try:
        found = {r.message_id: r for r in list_messages(conn, MessageQuery(TENANT), 1000)}
    finally:
        conn.close()
        built.close()
    assert len(found) == len(planned)
    for plan in planned:
        message, duplicates = runtime.ledger.get_message(TENANT, plan.message_id)
        state = message_state(message, duplicates)
        row = found[plan.message_id]
        context = f"{plan.scenario} {plan.message_id}"
        assert row.status == _STATUS_NAMES[state.status], context
        assert row.final == state.final, context
        assert row.permanent == (state.permanent if state.HasField("permanent") else None), context
        assert (row.error_code or "") == state.error_code, context
        assert row.carrier == state.carrier, context
        assert row.country == state.country, context
        assert row.attempts == state.attempt_count, context
        assert row.segments == state.segment_count, context
        assert row.conflict == state.conflict, context
        assert row.expiry_inferred == state.expiry_inferred, context
        assert row.version == state.version, context
        assert row.submitted_at == micros(state, "submitted_at"), context
        assert row.accepted_at == micros(state, "accepted_at"), context
        assert row.delivered_at == micros(state, "delivered_at"), context
        assert row.final_at == micros(state, "final_at"), context
        assert row.updated_at == micros(state, "updated_at"), context
        assert row.carriers == tuple(dict.fromkeys(a.carrier for a in state.attempts)), context


def test_statistics_match_exact_values(runtime: Runtime) -> None:
    planned = plans(120, seed=3)
    run_rounds(runtime.ledger, planned)
    built = projector(runtime, batch_size=100)
    built.catch_up()

    # Exact values from the aggregates, by the documented rules.
    delivered: dict[str, int] = defaultdict(int)
    submitted: dict[str, int] = defaultdict(int)
    samples: dict[str, list[float]] = defaultdict(list)
    for plan in planned:
        message, _ = runtime.ledger.get_message(TENANT, plan.message_id)
        credited = message.outcome_attempt
        submitted[credited.carrier] += 1
        outcome = message.outcome
        if outcome.final and outcome.status is Status.DELIVERED:
            delivered[credited.carrier] += 1
        for attempt in message.attempts:
            result = attempt.outcome
            if result.final and result.status is Status.DELIVERED and result.at is not None:
                elapsed = to_micros(result.at) - to_micros(attempt.submitted_at)
                samples[attempt.carrier].append(elapsed / 1000)

    start = int(BASE.timestamp())
    conn = target_of(runtime).connect()
    try:
        query = StatsQuery(start, start + 86_400, TENANT, group_by=("carrier",))
        performance = {g.key.carrier or "": g for g in carrier_performance(conn, query)}
        latencies = {g.key.carrier or "": g for g in latency(conn, query)}
    finally:
        conn.close()
        built.close()

    assert set(performance) == set(submitted)
    for carrier, group in performance.items():
        assert group.counters["submitted"] == submitted[carrier], carrier
        assert group.counters["delivered"] == delivered[carrier], carrier
    for carrier, values in samples.items():
        metric = next(m for m in latencies[carrier].metrics if m.metric == "submit_to_delivered")
        assert metric.count == len(values), carrier
        ordered = sorted(values)
        for q, estimate in ((0.5, metric.p50), (0.9, metric.p90), (0.99, metric.p99)):
            exact = ordered[math.floor(q * (len(ordered) - 1))]
            assert estimate is not None
            assert abs(estimate - exact) <= RELATIVE_ACCURACY * exact, (carrier, q)
