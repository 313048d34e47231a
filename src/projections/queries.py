"""Queries over the read models, shared by the gRPC service and the report.

Statistics are selected by cohort hour: a range ``[start, end)`` takes every
hour that overlaps it, and merges counts and histogram buckets across hours,
carriers, countries and tenants as the request's grouping requires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from projections.counting import LATENCY_METRICS, PERF_COUNTERS, final_outcomes
from projections.database import Connection
from projections.histogram import quantiles
from projections.tables import (
    CARRIER_HOURLY,
    FAILURE_CAUSES,
    LATENCY_BUCKETS,
    MESSAGES,
    POSITIONS,
    existing_tables,
)

__all__ = [
    "GROUPINGS",
    "Cause",
    "GroupKey",
    "LatencyGroup",
    "LatencyStats",
    "MessageQuery",
    "MessageSummary",
    "PerformanceGroup",
    "StatsQuery",
    "carrier_performance",
    "latency",
    "list_messages",
    "read_position",
]

Grouping = Literal["carrier", "country", "hour", "day"]
GROUPINGS: tuple[Grouping, ...] = ("carrier", "country", "hour", "day")

_GROUP_SQL = {
    "carrier": "carrier",
    "country": "country",
    "hour": "hour",
    "day": "(hour / 86400) * 86400",
}
_SUMMARY_COLUMNS = tuple(c for c in MESSAGES.column_names if c != "fold")


def read_position(conn: Connection, name: str) -> int:
    """Return a projection's stored position, 0 when it never ran."""
    if POSITIONS not in existing_tables(conn):
        return 0
    row = conn.fetchone(
        f"SELECT position FROM {conn.target.table(POSITIONS)} WHERE name = %s", (name,)
    )
    return 0 if row is None else int(row[0])


def _missing(conn: Connection, *tables: str) -> bool:
    """Return True when a read model's tables do not exist yet (no projector ran)."""
    return not set(tables) <= existing_tables(conn)


# ------------------------------------------------------------------ messages


@dataclass(frozen=True)
class MessageQuery:
    """Filters of a message list; times are epoch microseconds, ``to`` exclusive."""

    tenant: str
    statuses: tuple[str, ...] = ()
    carrier: str | None = None
    country: str | None = None
    submitted_from: int | None = None
    submitted_to: int | None = None


@dataclass(frozen=True)
class MessageSummary:
    """One ``rm_messages`` row without its fold."""

    aggregate_id: str
    tenant: str
    message_id: str
    status: str
    final: bool
    permanent: bool | None
    error_code: str | None
    error_table: str | None
    error_class: str | None
    carrier: str
    carriers: tuple[str, ...]
    country: str
    attempts: int
    segments: int
    conflict: bool
    expiry_inferred: bool
    submitted_at: int
    accepted_at: int | None
    delivered_at: int | None
    final_at: int | None
    updated_at: int
    version: int

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> MessageSummary:
        """Build a summary from a row in ``_SUMMARY_COLUMNS`` order."""
        values = dict(zip(_SUMMARY_COLUMNS, row, strict=True))
        values["final"] = bool(values["final"])
        values["permanent"] = None if values["permanent"] is None else bool(values["permanent"])
        values["conflict"] = bool(values["conflict"])
        values["expiry_inferred"] = bool(values["expiry_inferred"])
        values["carriers"] = tuple(str(values["carriers"]).split(","))
        return cls(**values)


def list_messages(
    conn: Connection, query: MessageQuery, limit: int, after: tuple[int, str] | None = None
) -> list[MessageSummary]:
    """Return up to ``limit`` messages matching ``query``, by submission time then id.

    Args:
        conn: A connection.
        query: The filters.
        limit: Most rows returned.
        after: ``(submitted_at, aggregate_id)`` of the last row of the previous page.
    """
    if _missing(conn, MESSAGES.base):
        return []
    dialect = conn.target.dialect
    conditions = ["tenant = %s"]
    params: list[Any] = [query.tenant]
    if query.statuses:
        condition, values = dialect.in_list("status", list(query.statuses))
        conditions.append(condition)
        params.extend(values)
    if query.carrier is not None:
        conditions.append("carrier = %s")
        params.append(query.carrier)
    if query.country is not None:
        conditions.append("country = %s")
        params.append(query.country)
    if query.submitted_from is not None:
        conditions.append("submitted_at >= %s")
        params.append(query.submitted_from)
    if query.submitted_to is not None:
        conditions.append("submitted_at < %s")
        params.append(query.submitted_to)
    if after is not None:
        conditions.append("(submitted_at > %s OR (submitted_at = %s AND aggregate_id > %s))")
        params.extend((after[0], after[0], after[1]))
    rows = conn.fetchall(
        f"SELECT {', '.join(_SUMMARY_COLUMNS)} FROM {conn.target.table(MESSAGES.base)} "
        f"WHERE {' AND '.join(conditions)} ORDER BY submitted_at, aggregate_id LIMIT %s",
        [*params, limit],
    )
    return [MessageSummary.from_row(r) for r in rows]


# ---------------------------------------------------------------- statistics


@dataclass(frozen=True)
class StatsQuery:
    """Selection and grouping of the statistics to merge.

    Attributes:
        start: Start of the range, epoch seconds (inclusive).
        end: End of the range, epoch seconds (exclusive).
        tenant: Only this tenant; None merges every tenant.
        carriers: Only these carriers; empty means all.
        countries: Only these countries; empty means all.
        group_by: Dimensions that split the result; empty merges everything.
    """

    start: int
    end: int
    tenant: str | None = None
    carriers: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    group_by: tuple[Grouping, ...] = ()


@dataclass(frozen=True)
class GroupKey:
    """The values of the grouped dimensions; None for a dimension not grouped by.

    ``period_start`` is the start of the hour or UTC day, epoch seconds.
    """

    carrier: str | None = None
    country: str | None = None
    period_start: int | None = None


@dataclass(frozen=True)
class Cause:
    """Final non-delivered outcomes with one status, error code and class."""

    status: str
    error_code: str
    permanent: bool
    count: int


@dataclass
class PerformanceGroup:
    """Carrier performance counts of one group."""

    key: GroupKey
    counters: dict[str, int]
    causes: list[Cause] = field(default_factory=list)

    @property
    def finals(self) -> int:
        """Messages with a final outcome."""
        return final_outcomes(self.counters)

    @property
    def pending(self) -> int:
        """Messages without a final outcome: submitted minus finals."""
        return self.counters["submitted"] - self.finals

    @property
    def delivery_rate(self) -> float | None:
        """Delivered divided by final outcomes; None before any outcome is final."""
        finals = self.finals
        return self.counters["delivered"] / finals if finals else None


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of one latency metric, in milliseconds (None without samples)."""

    metric: str
    count: int
    p50: float | None
    p90: float | None
    p99: float | None


@dataclass(frozen=True)
class LatencyGroup:
    """Latency percentiles of one group, one entry per metric."""

    key: GroupKey
    metrics: tuple[LatencyStats, ...]


def _where(conn: Connection, query: StatsQuery) -> tuple[str, list[Any]]:
    dialect = conn.target.dialect
    # Hours that overlap [start, end).
    conditions = ["hour > %s", "hour < %s"]
    params: list[Any] = [query.start - 3600, query.end]
    if query.tenant is not None:
        conditions.insert(0, "tenant = %s")
        params.insert(0, query.tenant)
    if query.carriers:
        condition, values = dialect.in_list("carrier", list(query.carriers))
        conditions.append(condition)
        params.extend(values)
    if query.countries:
        condition, values = dialect.in_list("country", list(query.countries))
        conditions.append(condition)
        params.extend(values)
    return " AND ".join(conditions), params


def _group_columns(query: StatsQuery) -> list[str]:
    return [_GROUP_SQL[g] for g in query.group_by]


def _key(query: StatsQuery, values: Sequence[Any]) -> GroupKey:
    found = dict(zip(query.group_by, values, strict=True))
    period = found.get("hour", found.get("day"))
    return GroupKey(
        carrier=found.get("carrier"),
        country=found.get("country"),
        period_start=None if period is None else int(period),
    )


def carrier_performance(conn: Connection, query: StatsQuery) -> list[PerformanceGroup]:
    """Return carrier performance counts and failure causes per group, in key order."""
    if _missing(conn, CARRIER_HOURLY.base, FAILURE_CAUSES.base):
        return []
    where, params = _where(conn, query)
    groups = _group_columns(query)
    select = ", ".join([*groups, *(f"SUM({c})" for c in PERF_COUNTERS)])
    group_sql = f" GROUP BY {', '.join(groups)} ORDER BY {', '.join(groups)}" if groups else ""
    table = conn.target.table(CARRIER_HOURLY.base)
    result: dict[GroupKey, PerformanceGroup] = {}
    for row in conn.fetchall(f"SELECT {select} FROM {table} WHERE {where}{group_sql}", params):
        counts = row[len(groups) :]
        if counts[0] is None:
            continue  # no rows at all: SUM over nothing
        key = _key(query, row[: len(groups)])
        result[key] = PerformanceGroup(
            key, {name: int(v) for name, v in zip(PERF_COUNTERS, counts, strict=True)}
        )
    causes_select = ", ".join([*groups, "status", "error_code", "permanent", "SUM(count)"])
    causes_group = ", ".join([*groups, "status", "error_code", "permanent"])
    causes_table = conn.target.table(FAILURE_CAUSES.base)
    for row in conn.fetchall(
        f"SELECT {causes_select} FROM {causes_table} WHERE {where} "
        f"GROUP BY {causes_group} ORDER BY {causes_group}",
        params,
    ):
        key = _key(query, row[: len(groups)])
        status, code, permanent, count = row[len(groups) :]
        if key in result:
            result[key].causes.append(Cause(str(status), str(code), bool(permanent), int(count)))
    for group in result.values():
        group.causes.sort(key=lambda c: (-c.count, c.status, c.error_code))
    return list(result.values())


def latency(
    conn: Connection, query: StatsQuery, qs: Sequence[float] = (0.5, 0.9, 0.99)
) -> list[LatencyGroup]:
    """Return latency percentiles per group and metric, from merged histogram buckets.

    ``qs`` must hold three quantiles; they fill ``p50``, ``p90`` and ``p99`` in order.
    """
    if _missing(conn, LATENCY_BUCKETS.base):
        return []
    where, params = _where(conn, query)
    groups = _group_columns(query)
    columns = [*groups, "metric", "bucket"]
    table = conn.target.table(LATENCY_BUCKETS.base)
    merged: dict[GroupKey, dict[str, dict[int, int]]] = {}
    for row in conn.fetchall(
        f"SELECT {', '.join(columns)}, SUM(count) FROM {table} WHERE {where} "
        f"GROUP BY {', '.join(columns)}",
        params,
    ):
        key = _key(query, row[: len(groups)])
        metric, bucket, count = row[len(groups) :]
        merged.setdefault(key, {}).setdefault(str(metric), {})[int(bucket)] = int(count)
    result = []
    for key in sorted(merged, key=_sort_key):
        stats = []
        for metric in LATENCY_METRICS:
            buckets = merged[key].get(metric, {})
            p50, p90, p99 = quantiles(buckets, qs)
            stats.append(LatencyStats(metric, sum(buckets.values()), p50, p90, p99))
        result.append(LatencyGroup(key, tuple(stats)))
    return result


def _sort_key(key: GroupKey) -> tuple[str, str, int]:
    return (key.carrier or "", key.country or "", key.period_start or 0)
