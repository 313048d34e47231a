"""The ``ledger.v1.LedgerService`` implementation on grpc.aio."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from ledger.application.commands import Command
from ledger.application.committer import GroupCommitter
from ledger.application.ledger import Ledger, Outcome
from ledger.domain.identity import check_id, check_tenant
from ledger.errors import (
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    LedgerError,
    ResourceExhaustedError,
)
from ledger.protocol.requests import (
    acceptance_from_proto,
    command_from_proto,
    raw_receipt_from_proto,
    receipt_from_proto,
    submit_from_proto,
)
from ledger.protocol.states import message_state, result_to_proto
from ledger.protocol.status import error_to_status, grpc_code
from ledger.server.history import history_events
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

__all__ = ["LedgerServicer", "abort_with_error"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def abort_with_error(context: grpc.aio.ServicerContext[Any, Any], error: LedgerError) -> None:
    """End the RPC with the status of ``error`` and its rich details.

    ``context.abort`` is used rather than ``abort_with_status`` so that
    OpenTelemetry's gRPC instrumentation records the real status code.
    """
    status = error_to_status(error)
    await context.abort(
        grpc_code(error),
        status.message,
        trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
    )


def _guarded(
    method: Callable[..., Awaitable[T]],
) -> Callable[..., Awaitable[T]]:
    """Turn ledger errors into their status, and any other exception into INTERNAL.

    Without this, grpc.aio answers an unexpected exception with UNKNOWN and
    the exception text, which may hold request data.
    """

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> T:
        try:
            return await method(self, request, context)
        except LedgerError as error:
            await abort_with_error(context, error)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            logger.exception("%s failed", method.__name__)
            await abort_with_error(context, InternalError("internal error; nothing was recorded"))
        raise AssertionError("unreachable: abort raises")

    return wrapper


def _check_message_ref(tenant: str, message_id: str) -> None:
    violations = [v for v in (check_tenant(tenant), check_id(message_id, "message_id")) if v]
    if violations:
        raise InvalidArgumentError(violations)


class LedgerServicer(ledger_pb2_grpc.LedgerServiceServicer):
    """Commands go through the group committer; queries read storage directly.

    Args:
        ledger: The ledger.
        committer: The group committer in front of the ledger.
        batch_max_commands: Most commands one ExecuteBatch call may carry.
    """

    def __init__(self, ledger: Ledger, committer: GroupCommitter, batch_max_commands: int) -> None:
        self.ledger = ledger
        self.committer = committer
        self.batch_max_commands = batch_max_commands

    async def _run_one(
        self, command: Command, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.CommandResult:
        outcome = (await self.committer.execute([command], timeout=context.time_remaining()))[0]
        if isinstance(outcome, LedgerError):
            raise outcome
        return result_to_proto(outcome, 0)

    @_guarded
    async def SubmitMessage(
        self, request: ledger_pb2.SubmitMessageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.CommandResult:
        """Record a submission."""
        return await self._run_one(submit_from_proto(request), context)

    @_guarded
    async def RecordAcceptance(
        self,
        request: ledger_pb2.RecordAcceptanceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.CommandResult:
        """Record a carrier acceptance."""
        return await self._run_one(acceptance_from_proto(request), context)

    @_guarded
    async def RecordReceipt(
        self, request: ledger_pb2.RecordReceiptRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.CommandResult:
        """Record a normalized receipt."""
        return await self._run_one(receipt_from_proto(request), context)

    @_guarded
    async def RecordRawReceipt(
        self,
        request: ledger_pb2.RecordRawReceiptRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.CommandResult:
        """Parse, normalize and record a receipt as the carrier sent it."""
        return await self._run_one(raw_receipt_from_proto(request), context)

    @_guarded
    async def ExecuteBatch(
        self, request: ledger_pb2.ExecuteBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.ExecuteBatchResponse:
        """Apply many commands; each gets its own result."""
        count = len(request.commands)
        if count > self.batch_max_commands:
            raise ResourceExhaustedError(
                f"the batch has {count} commands; the maximum is {self.batch_max_commands}: "
                "split it",
                retry_after_seconds=None,
                quota="ExecuteBatch.commands",
            )
        outcomes: list[Outcome | None] = [None] * count
        commands: list[Command] = []
        positions: list[int] = []
        for index, entry in enumerate(request.commands):
            try:
                commands.append(command_from_proto(entry))
                positions.append(index)
            except LedgerError as error:
                outcomes[index] = _prefixed(error, index)
        applied = await self.committer.execute(commands, timeout=context.time_remaining())
        for index, applied_outcome in zip(positions, applied, strict=True):
            outcomes[index] = _prefixed(applied_outcome, index)
        response = ledger_pb2.ExecuteBatchResponse()
        for index, outcome in enumerate(outcomes):
            assert outcome is not None
            response.results.append(result_to_proto(outcome, index))
        return response

    @_guarded
    async def GetMessage(
        self, request: ledger_pb2.GetMessageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.MessageState:
        """Return the current state of one message."""
        _check_message_ref(request.tenant, request.message_id)
        message, duplicates = await asyncio.to_thread(
            self.ledger.get_message, request.tenant, request.message_id
        )
        return message_state(message, duplicates)

    async def GetHistory(
        self, request: ledger_pb2.GetHistoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ledger_pb2.HistoryEvent]:
        """Stream every event of one message in version order."""
        try:
            _check_message_ref(request.tenant, request.message_id)
            events = await asyncio.to_thread(
                history_events, self.ledger, request.tenant, request.message_id
            )
        except LedgerError as error:
            await abort_with_error(context, error)
            return
        except Exception:
            logger.exception("GetHistory failed")
            await abort_with_error(context, InternalError("internal error"))
            return
        for event in events:
            yield event

    @_guarded
    async def LookupCarrierMessage(
        self,
        request: ledger_pb2.LookupCarrierMessageRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.LookupCarrierMessageResponse:
        """Find the message a carrier id belongs to."""
        violations = [
            v
            for v in (
                check_tenant(request.tenant),
                check_id(request.connection, "connection"),
                check_id(request.carrier_message_id, "carrier_message_id"),
            )
            if v
        ]
        if violations:
            raise InvalidArgumentError(violations)
        row, canonical = await asyncio.to_thread(
            self.ledger.lookup_carrier_id,
            request.tenant,
            request.connection,
            request.carrier_message_id,
        )
        message, _ = await asyncio.to_thread(self.ledger.get_message, row.tenant, row.message_id)
        return ledger_pb2.LookupCarrierMessageResponse(
            tenant=row.tenant,
            message_id=row.message_id,
            aggregate_id=str(row.aggregate_id),
            attempt=row.attempt,
            segment=row.segment,
            canonical_id=canonical,
            message_status=message_state(message, 0).status,
        )


def _prefixed(outcome: Outcome, index: int) -> Outcome:
    """Prefix field paths of a batch entry's violations with its position."""
    if isinstance(outcome, InvalidArgumentError):
        return InvalidArgumentError(
            [
                FieldViolation(f"commands[{index}].{v.field}", v.description)
                for v in outcome.violations
            ]
        )
    return outcome
