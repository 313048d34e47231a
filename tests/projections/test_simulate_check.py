"""The simulator's read-model check against an in-process server, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from ledger.runtime import Runtime, build_runtime
from ledger.simulate.carriers import build_carriers
from ledger.simulate.driver import DriverConfig
from ledger.simulate.plan import PlanConfig
from ledger.simulate.readmodel_check import check_read_models, expected_counts
from ledger.simulate.runner import prepare, run_simulation
from tests.conftest import make_settings


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime whose sweeper infers expiries every second, with no grace."""
    built = build_runtime(
        make_settings(
            database_url,
            tmp_path,
            expiry_grace_seconds=0,
            expiry_sweep_interval_seconds=1.0,
            projections_poll_interval_seconds=0.2,
        )
    )
    try:
        yield built
    finally:
        built.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_read_models_match_simulation(server: tuple[str, Runtime]) -> None:
    address, _ = server
    prepared = prepare(
        PlanConfig(
            messages=300,
            seed=17,
            run_id="rm17",
            now=datetime.now(UTC),
            carriers=tuple(build_carriers(4)),
            expiry_grace_seconds=0,
        )
    )
    config = DriverConfig(
        target=address,
        tenant="sim-readmodels",
        concurrency=4,
        batch_size=25,
        expiry_wait_seconds=20,
        max_seconds=60,
    )
    result = await run_simulation(prepared, config)
    assert [m.describe() for m in result.mismatches] == []

    async with grpc.aio.insecure_channel(address) as channel:
        check = await check_read_models(channel, config.tenant, result.expected, wait_seconds=30)
    assert check.problems == []
    assert check.latency_checked > 0
    assert check.causes_checked > 0
    assert check.counts["(all carriers)"]["submitted"] == (300, 300)
    assert 0 < check.counts["(all carriers)"]["accepted"][0] < 300
    truth = expected_counts(result.expected)
    assert sum(row["submitted"] for row in truth.values()) == 300
    assert {country for _, country, _ in truth} == {"AU", "FR", "GB", "US"}
