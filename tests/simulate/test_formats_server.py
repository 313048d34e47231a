"""The real-format mode against an in-process server on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.runtime import build_runtime
from ledger.server.app import create_server
from ledger.simulate import driver as driver_module
from ledger.simulate.connections import write_connections
from ledger.simulate.driver import DriverConfig
from ledger.simulate.formats.batching import Slot, join_reports
from ledger.simulate.formats.mode import FormatsMode
from ledger.simulate.formats.probe import UnknownConnectionsError
from ledger.simulate.plan import PlanConfig
from ledger.simulate.runner import prepare, run_simulation
from ledger.v1 import ledger_pb2
from tests.conftest import make_settings


async def _serve(database_url: str, data_dir: Path, connections: Path | None) -> AsyncIterator[str]:
    overrides: dict[str, object] = {
        "expiry_grace_seconds": 0,
        "expiry_sweep_interval_seconds": 1.0,
    }
    if connections is not None:
        overrides["connections_file"] = connections
    runtime = build_runtime(make_settings(database_url, data_dir, **overrides))
    server = await create_server(runtime, "127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(0)
        runtime.close()


@pytest.fixture
async def formats_server(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A server started with the simulator's connection profiles; yields its address."""
    profiles = tmp_path / "connections.toml"
    write_connections(profiles)
    async for address in _serve(database_url, tmp_path, profiles):
        yield address


@pytest.fixture
async def plain_server(tmp_path: Path) -> AsyncIterator[str]:
    """A server without a connections file, on SQLite."""
    async for address in _serve(f"sqlite:///{tmp_path / 'plain.db'}", tmp_path, None):
        yield address


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("batch_size", [0, 25], ids=["unary", "batch"])
async def test_formats_no_mismatches(
    formats_server: str, batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    joined: list[int] = []

    def counting_join(
        commands: Sequence[ledger_pb2.Command], connections: frozenset[str]
    ) -> tuple[list[ledger_pb2.Command], list[Slot]]:
        sent, slots = join_reports(commands, connections)
        joined.append(len(commands) - len(sent))
        return sent, slots

    monkeypatch.setattr(driver_module, "join_reports", counting_join)
    mode = FormatsMode(seed=21)
    config = PlanConfig(
        messages=200,
        seed=21,
        run_id=f"fmt{batch_size}",
        now=datetime.now(UTC),
        carriers=tuple(mode.carriers),
        expiry_grace_seconds=0,
    )
    prepared = prepare(config, mode.rewrite)
    driver = DriverConfig(
        target=formats_server,
        tenant="sim-formats",
        concurrency=16 if batch_size == 0 else 4,
        batch_size=batch_size,
        expiry_wait_seconds=20,
        max_seconds=70,
        joined_report_connections=mode.joined_report_connections,
    )

    await mode.check(formats_server)
    result = await run_simulation(prepared, driver)

    assert mode.stats is not None
    assert sum(mode.stats.raw.values()) > 400
    assert len(mode.stats.raw) == len(mode.connections)
    assert [p.detail for p in result.stats.problems] == []
    assert [m.describe() for m in result.mismatches] == []
    assert result.stats.finished == 200
    assert result.stats.commands == prepared.command_count
    if batch_size:
        assert sum(joined) > 0


async def test_formats_check_rejects_plain_server(plain_server: str) -> None:
    mode = FormatsMode(seed=1)

    with pytest.raises(UnknownConnectionsError) as caught:
        await mode.check(plain_server)

    assert len(caught.value.problems) == len(mode.connections)
    assert "SMSLEDGER_CONNECTIONS_FILE" in str(caught.value)


async def test_formats_cli_refuses_plain_server(plain_server: str) -> None:
    args = ["simulate", "--target", plain_server, "--messages", "5", "--receipt-formats"]

    outcome = await asyncio.to_thread(CliRunner().invoke, main, args)

    assert outcome.exit_code == 1
    assert "does not hold the simulator's connection profiles" in outcome.output
    assert "sim-smpp-text" in outcome.output


def test_formats_cli_writes_connections(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"

    outcome = CliRunner().invoke(main, ["simulate", "--write-connections", str(path)])

    assert outcome.exit_code == 0, outcome.output
    text = path.read_text()
    assert "[connections.sim-smpp-pdu]" in text
    assert 'receipt_id_base = "hex"' in text
