"""The ``ledger.v1.ReconciliationService``: stuck messages over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc

from ledger.domain.identity import check_tenant
from ledger.errors import FieldViolation, InvalidArgumentError
from ledger.protocol.events import stamp
from ledger.receipts.model import CarrierProfile
from ledger.server.service import _guarded
from ledger.storage.store import LedgerStore
from ledger.v1 import events_pb2, ledger_pb2, ledger_pb2_grpc
from ledger.webhooks.stuck import StuckMessage, StuckQuery, count_stuck, list_stuck

__all__ = ["SERVICE_NAME", "ReconciliationServicer", "stuck_gauge"]

SERVICE_NAME = ledger_pb2.DESCRIPTOR.services_by_name["ReconciliationService"].full_name


def _now() -> datetime:
    return datetime.now(UTC)


def _to_proto(message: StuckMessage) -> ledger_pb2.StuckMessage:
    status = events_pb2.MessageStatus.Value(f"MESSAGE_STATUS_{message.status or 'UNSPECIFIED'}")
    return ledger_pb2.StuckMessage(
        tenant=message.tenant,
        message_id=message.message_id,
        aggregate_id=str(message.aggregate_id),
        connection=message.connection,
        attempt=message.attempt,
        accepted_at=stamp(message.accepted_at),
        threshold_seconds=message.threshold_seconds,
        carrier_message_ids=[
            ledger_pb2.SegmentAcceptance(segment=segment, carrier_message_id=carrier_id)
            for segment, carrier_id in message.carrier_message_ids
        ],
        status=status,
    )


def stuck_gauge(
    store: LedgerStore,
    connections: Mapping[str, CarrierProfile],
    default_threshold_seconds: int,
    clock: Callable[[], datetime] = _now,
) -> Callable[[], dict[str, int]]:
    """Return a function that counts stuck attempts per connection, for a metrics gauge.

    The function queries the database; call it from a worker thread or a
    metrics callback that may block briefly.
    """

    def measure() -> dict[str, int]:
        query = StuckQuery(clock(), default_threshold_seconds, connections)
        return count_stuck(store, query)

    return measure


class ReconciliationServicer(ledger_pb2_grpc.ReconciliationServiceServicer):
    """Lists messages whose final outcome is overdue.

    Args:
        store: The ledger's storage.
        connections: Connection profiles, for their stuck thresholds.
        default_threshold_seconds: Threshold of connections without their own.
        clock: Returns the current time.
    """

    def __init__(
        self,
        store: LedgerStore,
        connections: Mapping[str, CarrierProfile],
        default_threshold_seconds: int,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.connections = connections
        self.default_threshold_seconds = default_threshold_seconds
        self.clock = clock

    @_guarded
    async def ListStuckMessages(
        self,
        request: ledger_pb2.ListStuckMessagesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.ListStuckMessagesResponse:
        """List stuck attempts, oldest acceptance first."""
        if request.tenant:
            violation = check_tenant(request.tenant)
            if violation is not None:
                raise InvalidArgumentError(violation)
        query = StuckQuery(
            self.clock(),
            self.default_threshold_seconds,
            self.connections,
            tenant=request.tenant or None,
            connection=request.connection or None,
        )
        try:
            found, token = await asyncio.to_thread(
                list_stuck, self.store, query, request.page_size or 100, request.page_token
            )
        except ValueError as error:
            raise InvalidArgumentError(FieldViolation("page_token", str(error))) from error
        return ledger_pb2.ListStuckMessagesResponse(
            messages=[_to_proto(m) for m in found], next_page_token=token
        )
