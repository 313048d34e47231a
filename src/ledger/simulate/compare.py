"""Reading every simulated message back and comparing it with the ground truth."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import grpc

from ledger.simulate.truth import ExpectedState
from ledger.v1 import events_pb2, ledger_pb2, ledger_pb2_grpc

__all__ = ["Difference", "Mismatch", "compare_state", "read_states", "settle_and_compare"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Difference:
    """One field whose value differs from the expected one."""

    field: str
    expected: object
    actual: object


@dataclass(frozen=True)
class Mismatch:
    """A message whose state differs from the ground truth."""

    message_id: str
    differences: tuple[Difference, ...]

    def describe(self) -> str:
        """Return one line naming each differing field with both values."""
        parts = [f"{d.field} expected {d.expected}, got {d.actual}" for d in self.differences]
        return f"{self.message_id}: " + "; ".join(parts)


def _status_name(value: int) -> str:
    return events_pb2.MessageStatus.Name(value).removeprefix("MESSAGE_STATUS_")  # type: ignore[arg-type]


def compare_state(
    message_id: str, expected: ExpectedState, state: ledger_pb2.MessageState | None
) -> Mismatch | None:
    """Compare a message's state with the ground truth; return the mismatch, if any.

    ``permanent`` is compared for FAILED only, ``error_code`` and ``carrier``
    only where the truth defines them.
    """
    if state is None:
        return Mismatch(message_id, (Difference("message", "present", "not found"),))
    pairs: list[tuple[str, object, object]] = [
        ("status", expected.status, _status_name(state.status)),
        ("final", expected.final, state.final),
        ("attempt_count", expected.attempt_count, state.attempt_count),
        ("conflict", expected.conflict, state.conflict),
        ("duplicate_count", expected.duplicate_count, state.duplicate_count),
        ("expiry_inferred", expected.expiry_inferred, state.expiry_inferred),
    ]
    if expected.status == "FAILED":
        actual_permanent = state.permanent if state.HasField("permanent") else None
        pairs.append(("permanent", expected.permanent, actual_permanent))
    if expected.error_code is not None:
        pairs.append(("error_code", expected.error_code or "(none)", state.error_code or "(none)"))
    if expected.carrier is not None:
        pairs.append(("carrier", expected.carrier, state.carrier))
    differences = tuple(Difference(name, e, a) for name, e, a in pairs if e != a)
    return Mismatch(message_id, differences) if differences else None


async def read_states(
    stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
    tenant: str,
    message_ids: Sequence[str],
    *,
    concurrency: int,
    timeout_seconds: float,
    on_read: Callable[[], None] | None = None,
) -> dict[str, ledger_pb2.MessageState | None]:
    """Read the state of each message; None for a message the server does not have.

    Raises:
        grpc.aio.AioRpcError: A read failed with a status other than NOT_FOUND.
    """
    states: dict[str, ledger_pb2.MessageState | None] = {}
    queue = list(reversed(message_ids))

    async def work() -> None:
        while queue:
            message_id = queue.pop()
            request = ledger_pb2.GetMessageRequest(tenant=tenant, message_id=message_id)
            try:
                states[message_id] = await stub.GetMessage(request, timeout=timeout_seconds)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                states[message_id] = None
            if on_read is not None:
                on_read()

    # gather (not a TaskGroup) so that a failed read raises its own error.
    workers = [asyncio.create_task(work()) for _ in range(max(1, concurrency))]
    try:
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
    return states


async def settle_and_compare(
    stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
    tenant: str,
    expected: Mapping[str, ExpectedState],
    *,
    concurrency: int,
    timeout_seconds: float,
    expiry_wait_seconds: float,
    on_read: Callable[[], None] | None = None,
) -> tuple[dict[str, ledger_pb2.MessageState | None], list[Mismatch]]:
    """Read and compare every message, waiting for expected inferred expiries.

    Messages whose truth is an inferred expiry are read again, once a
    second, until they match or ``expiry_wait_seconds`` have passed, because
    the server's sweeper infers expiry on its own schedule.

    Returns:
        The last state read of each message, and the mismatches in the
        order of ``expected``.
    """
    deadline = time.monotonic() + expiry_wait_seconds
    ids = list(expected)
    states = await read_states(
        stub, tenant, ids, concurrency=concurrency, timeout_seconds=timeout_seconds, on_read=on_read
    )
    while True:
        pending = [
            i
            for i in ids
            if expected[i].expiry_inferred and compare_state(i, expected[i], states[i]) is not None
        ]
        if not pending or time.monotonic() >= deadline:
            break
        logger.info("waiting for the sweeper to expire %d message(s)", len(pending))
        await asyncio.sleep(1.0)
        states.update(
            await read_states(
                stub, tenant, pending, concurrency=concurrency, timeout_seconds=timeout_seconds
            )
        )
    mismatches = []
    for message_id in ids:
        mismatch = compare_state(message_id, expected[message_id], states[message_id])
        if mismatch is not None:
            mismatches.append(mismatch)
    return states, mismatches
