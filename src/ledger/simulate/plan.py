"""Seeded generation of a run's message scripts.

The plan is a pure function of its :class:`PlanConfig`: the same seed, run id,
carriers and reference time give the same scripts. Scripts use virtual times
before the reference time, so that every receipt is in the past when it
reaches the ledger. Messages of expiry scenarios are submitted so long ago,
with so short a validity, that the server's sweeper infers their expiry
within seconds of the run.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.simulate.carriers import SimCarrier
from ledger.simulate.scenarios import SCENARIOS, Scenario, ScenarioContext
from ledger.simulate.script import CarrierIds, ScriptBuilder
from ledger.simulate.steps import MessagePlan

__all__ = ["PlanConfig", "generate_plan", "scenario_counts", "scenario_names"]

_NORMAL_VALIDITY_SECONDS = 86_400

# Ranges that numbering plans reserve for fiction or tests: UK 07700 900xxx,
# US 202-555-01xx, Australia 0491 570 xxx, France 06 39 98 xx xx.
_DESTINATION_PATTERNS = (
    "+447700900{:03d}",
    "+120255501{:02d}",
    "+61491570{:03d}",
    "+336399800{:02d}",
)


@dataclass(frozen=True)
class PlanConfig:
    """Inputs of plan generation.

    Attributes:
        messages: Number of messages.
        seed: Seed of the random generator.
        run_id: Prefix of message ids and carrier ids, unique per run so that
            reruns against the same server never collide. Letters and digits.
        now: Reference time; every script's times lie before it.
        carriers: Simulated connections.
        expiry_grace_seconds: The server's wait after validity before it
            infers expiry.
        skip: Names of scenario families to leave out.
    """

    messages: int
    seed: int
    run_id: str
    now: datetime
    carriers: tuple[SimCarrier, ...]
    expiry_grace_seconds: int = 600
    skip: frozenset[str] = field(default_factory=frozenset)


def scenario_names() -> list[str]:
    """Return the names of every scenario family."""
    return [s.name for s in SCENARIOS]


def _chosen_scenarios(skip: frozenset[str]) -> list[Scenario]:
    unknown = sorted(skip - set(scenario_names()))
    if unknown:
        raise ValueError(
            f"unknown scenario {', '.join(unknown)}; known: {', '.join(scenario_names())}"
        )
    chosen = [s for s in SCENARIOS if s.name not in skip]
    if not chosen:
        raise ValueError("every scenario is skipped; keep at least one")
    return chosen


def generate_plan(config: PlanConfig) -> list[MessagePlan]:
    """Generate the scripts of a run.

    Raises:
        ValueError: The configuration is invalid (no messages, no carriers,
            a run id that is not alphanumeric, an unknown scenario name).
    """
    if config.messages < 1:
        raise ValueError(f"message count is {config.messages}; simulate at least 1 message")
    if not config.carriers:
        raise ValueError("no carriers to simulate; give at least 1")
    if not config.run_id.isalnum():
        raise ValueError(f"run id {config.run_id!r} must be letters and digits only")
    scenarios = _chosen_scenarios(config.skip)
    weights = [s.weight for s in scenarios]
    shares = [c.traffic_share for c in config.carriers]
    rng = random.Random(config.seed)
    ids = CarrierIds(config.run_id)
    plans = []
    for index in range(config.messages):
        scenario = rng.choices(scenarios, weights)[0]
        carrier = rng.choices(config.carriers, shares)[0]
        message_id = f"{config.run_id}-{index:06d}"
        plans.append(_build(rng, ids, config, scenario, carrier, message_id))
    return plans


def _build(
    rng: random.Random,
    ids: CarrierIds,
    config: PlanConfig,
    scenario: Scenario,
    carrier: SimCarrier,
    message_id: str,
) -> MessagePlan:
    destination = rng.choice(_DESTINATION_PATTERNS).format(rng.randint(0, 99))
    if scenario.expires:
        validity = rng.randint(60, 300)
        # Validity plus grace ended 15-30 minutes ago, so the sweeper's next
        # round infers the expiry.
        ago = validity + config.expiry_grace_seconds + rng.uniform(900, 1800)
        start = config.now - timedelta(seconds=ago)
    else:
        validity = _NORMAL_VALIDITY_SECONDS
        # One to two hours ago: every script ends well before ``now``.
        start = config.now - timedelta(seconds=rng.uniform(3600, 7200))
    builder = ScriptBuilder(rng, message_id, destination, start, ids)
    context = ScenarioContext(carrier, config.carriers, validity, config.expiry_grace_seconds)
    scenario.build(builder, context)
    return MessagePlan(message_id, scenario.name, carrier.name, tuple(builder.steps))


def scenario_counts(plans: list[MessagePlan]) -> dict[str, int]:
    """Return how many messages each scenario family has, in ``SCENARIOS`` order."""
    counts = Counter(p.scenario for p in plans)
    return {name: counts[name] for name in scenario_names() if counts[name]}
