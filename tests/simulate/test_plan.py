"""Plan generation: determinism, unique ids, consistent scripts, scenario shares."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from ledger.simulate.carriers import build_carriers
from ledger.simulate.plan import PlanConfig, generate_plan, scenario_counts
from ledger.simulate.scenarios import SCENARIOS
from ledger.simulate.steps import Accept, Receipt, Replay, Submit
from ledger.simulate.truth import canonical_id, expected_outcome

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def config(messages: int = 2000, seed: int = 11, **fields: object) -> PlanConfig:
    return PlanConfig(
        messages=messages,
        seed=seed,
        run_id=str(fields.pop("run_id", "r1a2b3c4")),
        now=NOW,
        carriers=tuple(build_carriers(4)),
        **fields,  # type: ignore[arg-type]
    )


def test_plan_same_seed_same_plan() -> None:
    assert generate_plan(config(300)) == generate_plan(config(300))


def test_plan_other_seed_other_plan() -> None:
    assert generate_plan(config(300, seed=1)) != generate_plan(config(300, seed=2))


def test_plan_weights_sum_to_100() -> None:
    assert sum(s.weight for s in SCENARIOS) == 100


def test_plan_ids_unique() -> None:
    plans = generate_plan(config())
    carrier_ids = [
        (p.message_id, canonical_id(carrier_id))
        for p in plans
        for step in p.steps
        if isinstance(step, Accept)
        for _, carrier_id in step.segments
    ]

    assert len({p.message_id for p in plans}) == len(plans)
    assert all(p.message_id.startswith("r1a2b3c4-") for p in plans)
    assert len({c for _, c in carrier_ids}) == len(carrier_ids)


def test_plan_scripts_consistent() -> None:
    for plan in generate_plan(config()):
        state, answers = expected_outcome(plan.steps)
        assert len(answers) == len(plan.steps), plan.message_id
        assert state.final, plan


def test_plan_times_before_now() -> None:
    for plan in generate_plan(config()):
        for step in plan.steps:
            if isinstance(step, Submit | Accept):
                moment = step.submitted_at if isinstance(step, Submit) else step.accepted_at
                assert moment < NOW - timedelta(minutes=5), plan
            elif isinstance(step, Receipt):
                assert step.occurred_at < NOW - timedelta(minutes=5), plan


def test_plan_expiry_scripts_due() -> None:
    grace = 600
    for plan in generate_plan(config(expiry_grace_seconds=grace)):
        for step in plan.steps:
            if isinstance(step, Submit) and step.expires_in_run:
                due = step.submitted_at + timedelta(seconds=step.validity_seconds + grace)
                assert due < NOW - timedelta(minutes=10), plan


def test_plan_replays_name_request_ids() -> None:
    replays = 0
    for plan in generate_plan(config()):
        for index, step in enumerate(plan.steps):
            if isinstance(step, Replay):
                replays += 1
                original = plan.steps[step.index]
                assert step.index < index
                assert isinstance(original, Submit | Accept | Receipt)
                assert original.request_id
    assert replays > 0


def test_plan_scenario_shares() -> None:
    counts = scenario_counts(generate_plan(config(20_000)))

    for scenario in SCENARIOS:
        share = 100 * counts.get(scenario.name, 0) / 20_000
        assert abs(share - scenario.weight) < max(1.0, scenario.weight * 0.2), scenario.name


def test_plan_skip_scenarios() -> None:
    plans = generate_plan(config(500, skip=frozenset({"single-attempt", "multipart"})))

    assert not {"single-attempt", "multipart"} & {p.scenario for p in plans}


def test_plan_covers_every_case() -> None:
    results: Counter[str] = Counter()
    states: Counter[str] = Counter()
    for plan in generate_plan(config()):
        state, replies = expected_outcome(plan.steps)
        results.update(replies)
        states[state.status] += 1
        states["conflict"] += state.conflict
        states["inferred"] += state.expiry_inferred
        states["retried"] += state.attempt_count > 1

    for result in ("parked", "duplicate", "replayed", "recorded"):
        assert results[result] > 0, result
    for outcome in ("DELIVERED", "FAILED", "EXPIRED", "REJECTED", "ACCEPTED"):
        assert states[outcome] > 0, outcome
    for flag in ("conflict", "inferred", "retried"):
        assert states[flag] > 0, flag


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"messages": 0}, "at least 1 message"),
        ({"run_id": "run-1"}, "letters and digits"),
        ({"skip": frozenset({"nope"})}, "unknown scenario nope"),
        ({"skip": frozenset(s.name for s in SCENARIOS)}, "every scenario is skipped"),
    ],
)
def test_plan_invalid_config(fields: dict[str, object], message: str) -> None:
    messages = int(fields.pop("messages", 10))  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=message):
        generate_plan(config(messages, **fields))  # type: ignore[arg-type]


def test_carriers_invalid_count() -> None:
    with pytest.raises(ValueError, match="at least 1 carrier"):
        build_carriers(0)


def test_carriers_names_unique() -> None:
    names = [c.name for c in build_carriers(14)]

    assert len(set(names)) == 14
    assert "sim-tier1-2" in names
