"""Sends the scripts of a plan to a running ledger over gRPC.

Each message's steps are sent strictly in order, while many messages run at
once. In unary mode ``concurrency`` workers each run one script at a time
with the single-command RPCs. In batch mode ``concurrency`` ExecuteBatch
calls are in flight, each carrying the next command of up to ``batch_size``
different messages, so a batch mixes messages and every message keeps its
own order. Every command result is checked against the one the ground truth
expects (parked, duplicate, replayed, recorded, or plain OK).

With :class:`ReceiptCallbacks`, the raw receipts it handles travel as HTTP
callbacks instead, in the same order. A callback's response does not name
the receipt's disposition, so only its success is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from ledger.simulate.formats.batching import join_reports, result_for
from ledger.simulate.requests import to_command
from ledger.simulate.steps import MessagePlan, Receipt, Replay, WaitForExpiry
from ledger.simulate.truth import Disposition
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

__all__ = ["CommandProblem", "DriveStats", "Driver", "DriverConfig", "ReceiptCallbacks"]

logger = logging.getLogger(__name__)

# Status codes after which the command was not applied and may be sent again.
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE.value[0], grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
)

_DISPOSITIONS = {
    "recorded": ledger_pb2.RECEIPT_DISPOSITION_RECORDED,
    "parked": ledger_pb2.RECEIPT_DISPOSITION_PARKED,
    "duplicate": ledger_pb2.RECEIPT_DISPOSITION_DUPLICATE,
}


@dataclass(frozen=True)
class DriverConfig:
    """Connection and pacing settings of the driver.

    Attributes:
        target: Server address, such as ``127.0.0.1:50051``.
        tenant: Tenant of every simulated message.
        concurrency: Scripts (unary mode) or batch calls (batch mode) in flight.
        batch_size: Commands per ExecuteBatch call; 0 sends single-command RPCs.
        expiry_wait_seconds: How long to wait for an inferred expiry.
        rpc_timeout_seconds: Deadline of each RPC.
        max_retries: Resends of a command the server refused as overloaded
            or unavailable, before it counts as a problem.
        max_seconds: Bound on the whole sending phase.
        connect_timeout_seconds: How long to wait for the server's port at the start.
        joined_report_connections: Connections whose raw receipts in one
            ExecuteBatch call are joined into multi-report payloads.
    """

    target: str
    tenant: str = "sim"
    concurrency: int = 64
    batch_size: int = 0
    expiry_wait_seconds: float = 60.0
    rpc_timeout_seconds: float = 30.0
    max_retries: int = 8
    max_seconds: float = 3600.0
    connect_timeout_seconds: float = 10.0
    joined_report_connections: frozenset[str] = frozenset()


class ReceiptCallbacks(Protocol):
    """Delivers some raw receipts as HTTP callbacks instead of gRPC commands."""

    def handles(self, command: ledger_pb2.Command) -> bool:
        """Tell whether ``command`` travels as a callback."""
        ...

    async def send(
        self, command: ledger_pb2.Command, message_ids: Sequence[str]
    ) -> ledger_pb2.CommandResult:
        """Deliver ``command``, which carries receipts of ``message_ids``, and return its result."""
        ...


@dataclass(frozen=True)
class CommandProblem:
    """A step whose command result differs from the expected one."""

    message_id: str
    step: int
    detail: str


@dataclass
class DriveStats:
    """Counters and findings of the sending phase.

    Attributes:
        commands: Commands the server returned a final result for (resends not counted).
        retries: Commands resent after UNAVAILABLE or RESOURCE_EXHAUSTED.
        parked: Receipts with the PARKED disposition, by connection.
        problems: Command results that differ from the expected ones.
        seconds: Wall time of the sending phase.
        finished: Scripts sent to the end.
    """

    commands: int = 0
    retries: int = 0
    parked: Counter[str] = field(default_factory=Counter)
    problems: list[CommandProblem] = field(default_factory=list)
    seconds: float = 0.0
    finished: int = 0


class Driver:
    """Runs a plan against a server.

    Args:
        config: Connection and pacing.
        plans: The scripts.
        expected_results: For each script, the result the ground truth expects per step.
        on_command: Called once per completed command, for progress display.
        callbacks: Delivers the raw receipts it handles over HTTP. None sends
            every command over gRPC.
    """

    def __init__(
        self,
        config: DriverConfig,
        plans: Sequence[MessagePlan],
        expected_results: Sequence[Sequence[Disposition]],
        on_command: Callable[[], None] | None = None,
        callbacks: ReceiptCallbacks | None = None,
    ) -> None:
        self.config = config
        self.plans = plans
        self.expected_results = expected_results
        self.on_command = on_command or (lambda: None)
        self.callbacks = callbacks
        self.stats = DriveStats()
        self._cursors = [0] * len(plans)
        self._retries: dict[int, int] = {}
        self._stub: ledger_pb2_grpc.LedgerServiceAsyncStub | None = None

    # ------------------------------------------------------------ running

    async def run(self, channel: grpc.aio.Channel) -> DriveStats:
        """Send every script; return what happened.

        Stops after ``max_seconds`` and records every unfinished script as a problem.
        """
        self._stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.max_seconds):
                if self.config.batch_size > 0:
                    await self._run_batches()
                else:
                    await self._run_unary()
        except TimeoutError:
            logger.warning("sending stopped after %.0f s", self.config.max_seconds)
            for index, plan in enumerate(self.plans):
                if self._cursors[index] < len(plan.steps):
                    self._problem(index, "script not finished within the run's time limit")
        self.stats.seconds = time.monotonic() - started
        return self.stats

    @property
    def stub(self) -> ledger_pb2_grpc.LedgerServiceAsyncStub:
        """The service stub of the running channel."""
        assert self._stub is not None, "call run() first"
        return self._stub

    async def _run_unary(self) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(self.plans)):
            queue.put_nowait(index)

        async def work() -> None:
            while True:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._run_script(index)

        async with asyncio.TaskGroup() as group:
            for _ in range(self.config.concurrency):
                group.create_task(work())

    async def _run_script(self, index: int) -> None:
        plan = self.plans[index]
        while self._cursors[index] < len(plan.steps):
            if isinstance(plan.steps[self._cursors[index]], WaitForExpiry):
                await self._wait_for_expiry(index)
                self._cursors[index] += 1
                continue
            command = self._command(index)
            over_http = self._over_http(command)
            for attempt in range(self.config.max_retries + 1):
                if over_http:
                    assert self.callbacks is not None
                    result = await self.callbacks.send(command, (plan.message_id,))
                else:
                    result = await self._send_unary(command)
                if result.status.code not in _RETRYABLE or attempt == self.config.max_retries:
                    break
                self.stats.retries += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
            self._settle(index, result, over_http=over_http)
        self.stats.finished += 1

    async def _run_batches(self) -> None:
        ready: asyncio.Queue[int] = asyncio.Queue()
        window = self.config.concurrency * self.config.batch_size
        waiting = iter(range(len(self.plans)))
        remaining = len(self.plans)
        all_done = asyncio.Event()
        sleepers: set[asyncio.Task[None]] = set()

        def admit() -> None:
            index = next(waiting, None)
            if index is not None:
                advance(index)

        def advance(index: int) -> None:
            nonlocal remaining
            steps = self.plans[index].steps
            if self._cursors[index] >= len(steps):
                self.stats.finished += 1
                remaining -= 1
                if remaining == 0:
                    all_done.set()
                admit()
            elif isinstance(steps[self._cursors[index]], WaitForExpiry):
                task = asyncio.create_task(wait_then_advance(index))
                sleepers.add(task)
                task.add_done_callback(sleepers.discard)
            else:
                ready.put_nowait(index)

        async def wait_then_advance(index: int) -> None:
            await self._wait_for_expiry(index)
            self._cursors[index] += 1
            advance(index)

        async def work() -> None:
            while True:
                batch = [await ready.get()]
                while len(batch) < self.config.batch_size and not ready.empty():
                    batch.append(ready.get_nowait())
                await self._send_batch(batch)
                # Messages whose command must be resent are still at the same step.
                for index in batch:
                    advance(index)

        for _ in range(min(window, len(self.plans))):
            admit()
        workers = [asyncio.create_task(work()) for _ in range(self.config.concurrency)]
        finished = asyncio.create_task(all_done.wait())
        try:
            await asyncio.wait([finished, *workers], return_when=asyncio.FIRST_COMPLETED)
            for worker in workers:
                error = worker.exception() if worker.done() else None
                if error is not None:
                    raise error
        finally:
            for task in [finished, *workers, *sleepers]:
                task.cancel()
            for task in [finished, *workers, *sleepers]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # ------------------------------------------------------------ sending

    def _over_http(self, command: ledger_pb2.Command) -> bool:
        return self.callbacks is not None and self.callbacks.handles(command)

    def _command(self, index: int) -> ledger_pb2.Command:
        plan = self.plans[index]
        step = plan.steps[self._cursors[index]]
        if isinstance(step, Replay):
            step = plan.steps[step.index]
        assert not isinstance(step, Replay | WaitForExpiry)
        return to_command(self.config.tenant, plan.message_id, step)

    async def _send_unary(self, command: ledger_pb2.Command) -> ledger_pb2.CommandResult:
        timeout = self.config.rpc_timeout_seconds
        try:
            kind = command.WhichOneof("command")
            if kind == "submit":
                return await self.stub.SubmitMessage(command.submit, timeout=timeout)
            if kind == "acceptance":
                return await self.stub.RecordAcceptance(command.acceptance, timeout=timeout)
            if kind == "raw_receipt":
                return await self.stub.RecordRawReceipt(command.raw_receipt, timeout=timeout)
            return await self.stub.RecordReceipt(command.receipt, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            return _failed_result(error)

    async def _send_batch(self, batch: list[int]) -> None:
        """Send the next command of each message in ``batch`` and settle the results.

        A command refused as overloaded or unavailable stays at its step, to
        be sent again in a later batch, after a backoff. Receipts that travel
        as callbacks are delivered beside the ExecuteBatch call.
        """
        commands = [self._command(i) for i in batch]
        over_http = [self._over_http(command) for command in commands]
        results = [ledger_pb2.CommandResult()] * len(batch)
        rpc_part = [p for p in range(len(batch)) if not over_http[p]]
        http_part = [p for p in range(len(batch)) if over_http[p]]
        await asyncio.gather(
            self._execute_batch(commands, rpc_part, results),
            self._deliver_callbacks(batch, commands, http_part, results),
        )
        retry_after = 0.0
        for index, result, http in zip(batch, results, over_http, strict=True):
            retries = self._retries.get(index, 0)
            if result.status.code in _RETRYABLE and retries < self.config.max_retries:
                self._retries[index] = retries + 1
                self.stats.retries += 1
                retry_after = max(retry_after, min(2.0, 0.05 * 2**retries))
                continue
            self._retries.pop(index, None)
            self._settle(index, result, over_http=http)
        if retry_after:
            await asyncio.sleep(retry_after)

    async def _execute_batch(
        self,
        commands: list[ledger_pb2.Command],
        part: list[int],
        results: list[ledger_pb2.CommandResult],
    ) -> None:
        """Send the commands at positions ``part`` in one ExecuteBatch call; fill ``results``."""
        if not part:
            return
        sent, slots = join_reports(
            [commands[p] for p in part], self.config.joined_report_connections
        )
        request = ledger_pb2.ExecuteBatchRequest(commands=sent)
        try:
            response = await self.stub.ExecuteBatch(
                request, timeout=self.config.rpc_timeout_seconds
            )
            for position, slot in zip(part, slots, strict=True):
                results[position] = result_for(response.results, slot)
        except grpc.aio.AioRpcError as error:
            for position in part:
                results[position] = _failed_result(error)

    async def _deliver_callbacks(
        self,
        batch: list[int],
        commands: list[ledger_pb2.Command],
        part: list[int],
        results: list[ledger_pb2.CommandResult],
    ) -> None:
        """Deliver the commands at positions ``part`` as callbacks, joined like a batch."""
        if not part:
            return
        assert self.callbacks is not None
        sent, slots = join_reports(
            [commands[p] for p in part], self.config.joined_report_connections
        )
        carried: list[list[str]] = [[] for _ in sent]
        for position, (target, _) in zip(part, slots, strict=True):
            carried[target].append(self.plans[batch[position]].message_id)
        replies = await asyncio.gather(
            *(self.callbacks.send(c, ids) for c, ids in zip(sent, carried, strict=True))
        )
        for position, slot in zip(part, slots, strict=True):
            results[position] = result_for(replies, slot)

    def _settle(
        self, index: int, result: ledger_pb2.CommandResult, *, over_http: bool = False
    ) -> None:
        """Check a command result against the expected one and move the script on.

        A callback's result names no disposition, so ``over_http`` skips that check.
        """
        plan = self.plans[index]
        position = self._cursors[index]
        step = plan.steps[position]
        expected = self.expected_results[index][position]
        self.stats.commands += 1
        self.on_command()
        self._cursors[index] += 1
        if result.status.code != 0:
            name = _code_name(result.status.code)
            detail = f"{type(step).__name__} failed: {name}: {result.status.message}"
            self._problem(index, detail, position)
            return
        if result.warnings:
            detail = f"raw receipt read with parser warnings: {'; '.join(result.warnings)}"
            self._problem(index, detail, position)
        parked = result.receipt_disposition == ledger_pb2.RECEIPT_DISPOSITION_PARKED
        if parked and isinstance(step, Receipt) and not result.replayed:
            self.stats.parked[step.connection] += 1
        if expected == "replayed":
            if not result.replayed:
                self._problem(index, "resent request id did not return a replayed result", position)
            return
        if result.replayed:
            detail = "new command returned a replayed result; was this run id used before?"
            self._problem(index, detail, position)
        elif over_http:
            return
        elif expected in _DISPOSITIONS and result.receipt_disposition != _DISPOSITIONS[expected]:
            name = ledger_pb2.ReceiptDisposition.Name(result.receipt_disposition)
            actual = name.removeprefix("RECEIPT_DISPOSITION_")
            self._problem(index, f"receipt expected {expected.upper()}, got {actual}", position)

    def _problem(self, index: int, detail: str, step: int | None = None) -> None:
        position = self._cursors[index] if step is None else step
        self.stats.problems.append(CommandProblem(self.plans[index].message_id, position, detail))

    # ------------------------------------------------------------ waiting

    async def _wait_for_expiry(self, index: int) -> None:
        """Poll the message until the server inferred its expiry, or give up after the wait."""
        message_id = self.plans[index].message_id
        deadline = time.monotonic() + self.config.expiry_wait_seconds
        request = ledger_pb2.GetMessageRequest(tenant=self.config.tenant, message_id=message_id)
        while time.monotonic() < deadline:
            try:
                state = await self.stub.GetMessage(request, timeout=self.config.rpc_timeout_seconds)
                if state.expiry_inferred:
                    return
            except grpc.aio.AioRpcError as error:
                logger.debug(
                    "polling for expiry failed: %s", error.code(), extra={"message_id": message_id}
                )
            await asyncio.sleep(0.5)
        self._problem(
            index,
            f"no inferred expiry within {self.config.expiry_wait_seconds:g} s; "
            "is the server's expiry grace longer than --expiry-grace?",
        )


def _code_name(code: int) -> str:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return str(code)


def _failed_result(error: grpc.aio.AioRpcError) -> ledger_pb2.CommandResult:
    result = ledger_pb2.CommandResult()
    result.status.code = error.code().value[0]
    result.status.message = error.details() or ""
    return result
