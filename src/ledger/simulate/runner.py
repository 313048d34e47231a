"""One simulation run: plan, ground truth, sending, reading back, summary."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.simulate.channels import open_channel
from ledger.simulate.compare import Mismatch, settle_and_compare
from ledger.simulate.driver import Driver, DriverConfig, DriveStats
from ledger.simulate.plan import PlanConfig, generate_plan, scenario_counts
from ledger.simulate.report import CarrierRow, RunInfo, summarize
from ledger.simulate.steps import MessagePlan
from ledger.simulate.truth import Disposition, ExpectedState, expected_outcome
from ledger.simulate.webhook_sender import CallbackSender, with_copies
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

__all__ = ["Prepared", "SimulationResult", "prepare", "run_simulation"]


@dataclass(frozen=True)
class Prepared:
    """A generated plan with its ground truth.

    Attributes:
        config: What the plan was generated from.
        plans: The scripts.
        expected: Expected final state per message id.
        expected_results: Expected command result per step, per script.
    """

    config: PlanConfig
    plans: list[MessagePlan]
    expected: dict[str, ExpectedState]
    expected_results: list[list[Disposition]]

    @property
    def command_count(self) -> int:
        """Number of commands the run sends."""
        return sum(p.command_count for p in self.plans)


@dataclass(frozen=True)
class SimulationResult:
    """Everything a run found.

    Attributes:
        expected: The ground truth the states were compared with: the
            prepared one, plus the copies of callbacks that reached the ledger.
    """

    info: RunInfo
    stats: DriveStats
    states: dict[str, ledger_pb2.MessageState | None]
    mismatches: list[Mismatch]
    rows: list[CarrierRow]
    expected: dict[str, ExpectedState]

    @property
    def failed(self) -> bool:
        """True when any state or command result differs from the ground truth."""
        return bool(self.mismatches or self.stats.problems)


def prepare(
    config: PlanConfig,
    rewrite: Callable[[list[MessagePlan]], list[MessagePlan]] | None = None,
) -> Prepared:
    """Generate the plan and compute its ground truth.

    Args:
        config: What to generate.
        rewrite: Changes the generated scripts before the ground truth is
            computed, such as giving receipts carrier-format payloads.

    Raises:
        ValueError: The configuration is invalid.
    """
    plans = generate_plan(config)
    if rewrite is not None:
        plans = rewrite(plans)
    expected: dict[str, ExpectedState] = {}
    expected_results: list[list[Disposition]] = []
    for plan in plans:
        state, results = expected_outcome(plan.steps)
        expected[plan.message_id] = state
        expected_results.append(results)
    return Prepared(config, plans, expected, expected_results)


async def run_simulation(
    prepared: Prepared,
    config: DriverConfig,
    *,
    on_command: Callable[[], None] | None = None,
    on_read: Callable[[], None] | None = None,
    callbacks: CallbackSender | None = None,
) -> SimulationResult:
    """Send a prepared plan to the server at ``config.target`` and check the result.

    With ``callbacks``, the raw receipts it handles go to the webhook endpoint,
    and the copies of callbacks that reached the ledger count as duplicates
    in the ground truth.

    Raises:
        ConnectionError: The server cannot be reached.
        grpc.aio.AioRpcError: Reading a message back failed (other than NOT_FOUND).
    """
    options = [
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]
    async with open_channel(config.target, options=options) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), config.connect_timeout_seconds)
        except TimeoutError:
            raise ConnectionError(
                f"cannot connect to {config.target} within {config.connect_timeout_seconds:g} s; "
                "check that `smsledger serve` listens there"
            ) from None
        driver = Driver(config, prepared.plans, prepared.expected_results, on_command, callbacks)
        async with contextlib.AsyncExitStack() as stack:
            if callbacks is not None:
                await stack.enter_async_context(callbacks)
            stats = await driver.run(channel)
        expected = prepared.expected
        if callbacks is not None:
            expected = with_copies(expected, callbacks.stats.extra_duplicates)
        started = time.monotonic()
        states, mismatches = await settle_and_compare(
            ledger_pb2_grpc.LedgerServiceStub(channel),
            config.tenant,
            expected,
            concurrency=config.concurrency,
            timeout_seconds=config.rpc_timeout_seconds,
            expiry_wait_seconds=config.expiry_wait_seconds,
            on_read=on_read,
        )
        check_seconds = time.monotonic() - started
    info = RunInfo(
        run_id=prepared.config.run_id,
        seed=prepared.config.seed,
        tenant=config.tenant,
        target=config.target,
        messages=len(prepared.plans),
        mode=f"batch of {config.batch_size}" if config.batch_size else "unary",
        drive_seconds=stats.seconds,
        check_seconds=check_seconds,
        scenario_counts=scenario_counts(prepared.plans),
    )
    rows = summarize(prepared.plans, expected, states, mismatches, stats)
    return SimulationResult(info, stats, states, mismatches, rows, expected)
