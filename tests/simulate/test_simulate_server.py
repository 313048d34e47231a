"""The simulator against an in-process server on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.runtime import Runtime
from ledger.simulate.carriers import build_carriers
from ledger.simulate.driver import DriverConfig
from ledger.simulate.plan import PlanConfig
from ledger.simulate.runner import prepare, run_simulation

# NOTE: these families expose ledger behaviour that differs from the product
# rules, as test_ledger_rules.py shows. They are left out until the ledger
# follows the rules, so that these tests guard everything else.
KNOWN_DIFFERENCES: frozenset[str] = frozenset()


def plan_config(messages: int, seed: int, run_id: str) -> PlanConfig:
    return PlanConfig(
        messages=messages,
        seed=seed,
        run_id=run_id,
        now=datetime.now(UTC),
        carriers=tuple(build_carriers(4)),
        expiry_grace_seconds=0,
        skip=KNOWN_DIFFERENCES,
    )


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("batch_size", [0, 25], ids=["unary", "batch"])
async def test_simulate_no_mismatches(server: tuple[str, Runtime], batch_size: int) -> None:
    address, _ = server
    prepared = prepare(plan_config(200, seed=5, run_id=f"it{batch_size}"))
    config = DriverConfig(
        target=address,
        tenant="sim-test",
        concurrency=16 if batch_size == 0 else 4,
        batch_size=batch_size,
        expiry_wait_seconds=20,
        max_seconds=50,
    )

    result = await run_simulation(prepared, config)

    assert [p.detail for p in result.stats.problems] == []
    assert [m.describe() for m in result.mismatches] == []
    assert result.stats.finished == 200
    assert result.stats.commands == prepared.command_count
    assert sum(row.messages for row in result.rows) == 200
    assert sum(row.parked for row in result.rows) > 0


async def test_simulate_unreachable_target() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    config = DriverConfig(target=address, connect_timeout_seconds=0.5)

    with pytest.raises(ConnectionError, match=f"cannot connect to {address}"):
        await run_simulation(prepare(plan_config(5, seed=1, run_id="nowhere")), config)


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_simulate_rerun_no_collisions(server: tuple[str, Runtime]) -> None:
    address, _ = server
    config = DriverConfig(target=address, concurrency=8, expiry_wait_seconds=20, max_seconds=50)

    for run_id in ("rerun1", "rerun2"):
        result = await run_simulation(prepare(plan_config(40, seed=9, run_id=run_id)), config)
        assert [m.describe() for m in result.mismatches] == []
        assert [p.detail for p in result.stats.problems] == []


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_simulate_cli_report(server: tuple[str, Runtime], tmp_path: Path) -> None:
    address, _ = server
    report = tmp_path / "report.json"
    skips = [arg for name in sorted(KNOWN_DIFFERENCES) for arg in ("--skip-scenario", name)]
    args = [
        "simulate",
        "--target",
        address,
        "--messages",
        "60",
        "--seed",
        "3",
        "--batch-size",
        "10",
        "--concurrency",
        "2",
        "--expiry-grace",
        "0",
        "--expiry-wait",
        "20",
        "--report-json",
        str(report),
        *skips,
    ]

    # The command runs its own event loop, so it runs in a thread beside the server's.
    outcome = await asyncio.to_thread(CliRunner().invoke, main, args)

    assert outcome.exit_code == 0, outcome.output
    assert "mismatches: 0" in outcome.output
    document = json.loads(report.read_text())
    assert document["mismatch_count"] == 0
    assert len(document["truth"]) == 60
    assert document["run"]["seed"] == 3
    assert sum(row["messages"] for row in document["summary"]) == 60


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_simulate_cli_reused_run_id(server: tuple[str, Runtime]) -> None:
    address, _ = server
    args = [
        "simulate",
        "--target",
        address,
        "--messages",
        "30",
        "--seed",
        "4",
        "--expiry-grace",
        "0",
        "--expiry-wait",
        "5",
        *[arg for name in sorted(KNOWN_DIFFERENCES) for arg in ("--skip-scenario", name)],
        "--run-id",
        "same1",
    ]
    runner = CliRunner()
    first = await asyncio.to_thread(runner.invoke, main, args)
    # The same run id again: the request ids repeat with other times in the
    # commands, which the server rejects as reused request ids.
    second = await asyncio.to_thread(runner.invoke, main, args)

    assert first.exit_code == 0, first.output
    assert second.exit_code == 1, second.output
    assert "unexpected command result" in second.output
    assert "FAILED_PRECONDITION" in second.output
