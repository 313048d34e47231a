"""The ``ledger.v1.ReadModelService`` implementation on grpc.aio."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from ledger.errors import InternalError, LedgerError, UnavailableError
from ledger.protocol.events import STATUS_TO_PROTO, timestamp
from ledger.server.service import abort_with_error
from ledger.storage.records import from_micros
from ledger.v1 import readmodels_pb2, readmodels_pb2_grpc
from projections.database import DATABASE_ERRORS, ConnectionPool
from projections.histogram import RELATIVE_ACCURACY
from projections.latency import LatencyProjection
from projections.messages import MessagesProjection
from projections.performance import PerformanceProjection
from projections.queries import (
    GroupKey,
    MessageSummary,
    PerformanceGroup,
    carrier_performance,
    latency,
    list_messages,
    read_position,
)
from projections.requests import (
    encode_page_token,
    message_page_from_proto,
    stats_query_from_proto,
)

__all__ = ["SERVICE_NAME", "ReadModelServicer"]

logger = logging.getLogger(__name__)

SERVICE_NAME = readmodels_pb2.DESCRIPTOR.services_by_name["ReadModelService"].full_name

T = TypeVar("T")

_METRICS = {
    "submit_to_accepted": readmodels_pb2.LATENCY_METRIC_SUBMIT_TO_ACCEPTED,
    "submit_to_delivered": readmodels_pb2.LATENCY_METRIC_SUBMIT_TO_DELIVERED,
    "accepted_to_delivered": readmodels_pb2.LATENCY_METRIC_ACCEPTED_TO_DELIVERED,
}


def _guarded(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Turn ledger and database errors into their status, anything else into INTERNAL."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> T:
        try:
            return await method(self, request, context)
        except LedgerError as error:
            await abort_with_error(context, error)
        except DATABASE_ERRORS as error:
            logger.warning("read model query failed: %s", error)
            await abort_with_error(
                context, UnavailableError("the read models' database is unavailable; retry later")
            )
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            logger.exception("%s failed", method.__name__)
            await abort_with_error(context, InternalError("internal error"))
        raise AssertionError("unreachable: abort raises")

    return wrapper


class ReadModelServicer(readmodels_pb2_grpc.ReadModelServiceServicer):
    """Answers read-model queries from the projections' tables.

    Args:
        pool: Connections to the read models' database.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    @_guarded
    async def ListMessages(
        self,
        request: readmodels_pb2.ListMessagesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> readmodels_pb2.ListMessagesResponse:
        """List a tenant's messages, one page at a time."""
        page = message_page_from_proto(request)

        def query() -> tuple[list[MessageSummary], int]:
            with self.pool.connection() as conn:
                position = read_position(conn, MessagesProjection.name)
                rows = list_messages(conn, page.query, page.page_size + 1, page.after)
                return rows, position

        rows, position = await asyncio.to_thread(query)
        response = readmodels_pb2.ListMessagesResponse(position=position)
        for row in rows[: page.page_size]:
            response.messages.append(_summary_to_proto(row))
        if len(rows) > page.page_size:
            last = rows[page.page_size - 1]
            response.next_page_token = encode_page_token(
                page.query, last.submitted_at, last.aggregate_id
            )
        return response

    @_guarded
    async def GetCarrierPerformance(
        self,
        request: readmodels_pb2.StatisticsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> readmodels_pb2.CarrierPerformanceResponse:
        """Return delivery counts per group over a range."""
        stats = stats_query_from_proto(request)

        def query() -> tuple[list[PerformanceGroup], int]:
            with self.pool.connection() as conn:
                position = read_position(conn, PerformanceProjection.name)
                return carrier_performance(conn, stats), position

        groups, position = await asyncio.to_thread(query)
        response = readmodels_pb2.CarrierPerformanceResponse(position=position)
        for group in groups:
            response.groups.append(_performance_to_proto(group))
        return response

    @_guarded
    async def GetLatency(
        self,
        request: readmodels_pb2.StatisticsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> readmodels_pb2.LatencyResponse:
        """Return latency percentiles per group over a range."""
        stats = stats_query_from_proto(request)

        def query() -> tuple[Any, int]:
            with self.pool.connection() as conn:
                position = read_position(conn, LatencyProjection.name)
                return latency(conn, stats), position

        groups, position = await asyncio.to_thread(query)
        response = readmodels_pb2.LatencyResponse(
            relative_accuracy=RELATIVE_ACCURACY, position=position
        )
        for group in groups:
            item = response.groups.add()
            item.key.CopyFrom(_key_to_proto(group.key))
            for stats_item in group.metrics:
                metric = item.metrics.add(
                    metric=_METRICS[stats_item.metric], count=stats_item.count
                )
                if stats_item.p50 is not None:
                    metric.p50_ms = stats_item.p50
                if stats_item.p90 is not None:
                    metric.p90_ms = stats_item.p90
                if stats_item.p99 is not None:
                    metric.p99_ms = stats_item.p99
        return response


def _time(micros: int | None) -> Any:
    return None if micros is None else timestamp(from_micros(micros))


def _summary_to_proto(row: MessageSummary) -> readmodels_pb2.MessageSummary:
    summary = readmodels_pb2.MessageSummary(
        tenant=row.tenant,
        message_id=row.message_id,
        aggregate_id=row.aggregate_id,
        version=row.version,
        status=STATUS_TO_PROTO[row.status],
        final=row.final,
        error_code=row.error_code or "",
        error_table=row.error_table or "",
        error_class=row.error_class or "",
        carrier=row.carrier,
        carriers=list(row.carriers),
        country=row.country,
        attempt_count=row.attempts,
        segment_count=row.segments,
        conflict=row.conflict,
        expiry_inferred=row.expiry_inferred,
        submitted_at=_time(row.submitted_at),
        accepted_at=_time(row.accepted_at),
        delivered_at=_time(row.delivered_at),
        final_at=_time(row.final_at),
        updated_at=_time(row.updated_at),
    )
    if row.permanent is not None:
        summary.permanent = row.permanent
    return summary


def _key_to_proto(key: GroupKey) -> readmodels_pb2.GroupKey:
    proto = readmodels_pb2.GroupKey(carrier=key.carrier or "", country=key.country or "")
    if key.period_start is not None:
        proto.period_start.FromSeconds(key.period_start)
    return proto


def _performance_to_proto(group: PerformanceGroup) -> readmodels_pb2.CarrierPerformance:
    proto = readmodels_pb2.CarrierPerformance(key=_key_to_proto(group.key), pending=group.pending)
    for name, value in group.counters.items():
        setattr(proto, name, value)
    rate = group.delivery_rate
    if rate is not None:
        proto.delivery_rate = rate
    for cause in group.causes:
        proto.failure_causes.add(
            status=STATUS_TO_PROTO[cause.status],
            error_code=cause.error_code,
            permanent=cause.permanent,
            count=cause.count,
        )
    return proto
