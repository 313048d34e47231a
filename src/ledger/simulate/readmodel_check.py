"""After a simulation: check the read models against the ground truth.

Every count comes from the simulator's own model of what it sent
(:mod:`ledger.simulate.truth`), never from the ledger's answers:

- Carrier performance counts, ``accepted`` included, per carrier,
  destination country and hour of first submission, must equal those of the
  expected message states. By the read models' rule a message counts once, on
  the carrier of the attempt that produced its outcome. Attempts count on
  their own carrier.
- Failure causes (status, error code, permanence) must match per group.
  Where the rules leave a message's error code open, its cause may carry
  any code of that status and permanence.
- Latency sample counts must match per carrier, per carrier and country, and
  per carrier, country and hour; each percentile must lie within the
  histograms' relative accuracy of the exact percentile of the latencies
  computed from the times the scripts sent. A group with a sample whose time
  the ledger took from its own clock has its count compared, not its
  percentiles.

The check needs a tenant that holds only this run's messages, because the
statistics are kept per tenant, carrier, country and hour.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

from ledger.simulate.channels import open_channel
from ledger.simulate.truth import ExpectedState
from ledger.v1 import events_pb2, readmodels_pb2, readmodels_pb2_grpc

__all__ = [
    "COUNTERS",
    "GroupKey",
    "ReadModelCheck",
    "ReadModelProbe",
    "check_read_models",
    "compare_causes",
    "expected_causes",
    "expected_counts",
    "expected_latencies",
    "probe_read_models",
    "run_check",
    "run_probe",
]

COUNTERS = (
    "submitted",
    "accepted",
    "delivered",
    "failed_permanent",
    "failed_transient",
    "rejected",
    "expired",
    "expired_inferred",
    "unknown",
    "accepted_final",
    "conflicts",
    "pending",
    "attempts",
    "retried",
)
"""Counters compared per group."""

_METRICS = {
    readmodels_pb2.LATENCY_METRIC_SUBMIT_TO_ACCEPTED: "submit_to_accepted",
    readmodels_pb2.LATENCY_METRIC_SUBMIT_TO_DELIVERED: "submit_to_delivered",
    readmodels_pb2.LATENCY_METRIC_ACCEPTED_TO_DELIVERED: "accepted_to_delivered",
}
_QUANTILES = (0.5, 0.9, 0.99)
_FINE = (
    readmodels_pb2.GROUPING_CARRIER,
    readmodels_pb2.GROUPING_COUNTRY,
    readmodels_pb2.GROUPING_HOUR,
)
_Grouping: TypeAlias = readmodels_pb2.Grouping.ValueType
_LATENCY_GROUPINGS: tuple[tuple[_Grouping, ...], ...] = (
    (readmodels_pb2.GROUPING_CARRIER,),
    (readmodels_pb2.GROUPING_CARRIER, readmodels_pb2.GROUPING_COUNTRY),
    _FINE,
)
TOTAL = "(all carriers)"

GroupKey = tuple[str, str, int]
"""(carrier, country, cohort hour in epoch seconds); empty or 0 where not grouped by."""

Cause = tuple[str, str | None, bool]
"""(status, error code or None where the rules leave it open, permanent)."""


@dataclass
class ReadModelCheck:
    """Result of the read-model check.

    Attributes:
        counts: Per carrier, ``(expected, read model)`` of each counter,
            summed over countries and hours.
        groups: Carrier, country and hour groups compared.
        causes_checked: Failure causes compared.
        latency_checked: Percentiles compared.
        latency_unchecked: Latency groups whose percentiles were not compared,
            because a sample's time is the ledger's own.
        problems: Every disagreement, as a sentence.
        relative_accuracy: The histograms' stated relative error.
        position: Log position the read models reflected.
    """

    counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    groups: int = 0
    causes_checked: int = 0
    latency_checked: int = 0
    latency_unchecked: int = 0
    problems: list[str] = field(default_factory=list)
    relative_accuracy: float = 0.0
    position: int = 0

    @property
    def failed(self) -> bool:
        """True when any count, cause or percentile disagrees."""
        return bool(self.problems)

    def table(self) -> Table:
        """Return the per-carrier comparison as a rich table."""
        table = Table(title="Read models against the ground truth (expected / read model)")
        table.add_column("carrier")
        for name in COUNTERS:
            table.add_column(name.replace("_", " "), justify="right")
        for carrier, values in sorted(self.counts.items()):
            cells = []
            for name in COUNTERS:
                expected, found = values.get(name, (0, 0))
                cell = str(expected) if expected == found else f"[red]{expected}/{found}[/]"
                cells.append(cell)
            table.add_row(carrier, *cells)
        return table


# ------------------------------------------------------------------ the truth


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


def _key(state: ExpectedState, carrier: str) -> GroupKey:
    return (carrier, state.country, state.cohort_hour)


def expected_counts(expected: Mapping[str, ExpectedState]) -> dict[GroupKey, dict[str, int]]:
    """Return the carrier performance counts the truth implies, per carrier, country and hour."""
    counts: dict[GroupKey, dict[str, int]] = defaultdict(_zero)
    for state in expected.values():
        row = counts[_key(state, state.credited_carrier)]
        finals = {
            "delivered": state.status == "DELIVERED",
            "failed_permanent": state.status == "FAILED" and bool(state.permanent),
            "failed_transient": state.status == "FAILED" and not state.permanent,
            "rejected": state.status == "REJECTED",
            "expired": state.status == "EXPIRED",
            "unknown": state.status == "UNKNOWN",
            "accepted_final": state.status == "ACCEPTED",
        }
        row["submitted"] += 1
        row["accepted"] += int(state.accepted)
        row["conflicts"] += int(state.conflict)
        row["expired_inferred"] += int(state.final and state.expiry_inferred)
        row["pending"] += int(not state.final)
        for name, hit in finals.items():
            row[name] += int(state.final and hit)
        last = len(state.attempt_carriers)
        for number, carrier in enumerate(state.attempt_carriers, 1):
            attempt_row = counts[_key(state, carrier)]
            attempt_row["attempts"] += 1
            attempt_row["retried"] += int(number < last)
    return dict(counts)


def expected_causes(expected: Mapping[str, ExpectedState]) -> dict[GroupKey, Counter[Cause]]:
    """Return the failure causes the truth implies: final outcomes other than a success."""
    causes: dict[GroupKey, Counter[Cause]] = defaultdict(Counter)
    for state in expected.values():
        if not state.final or state.status in ("DELIVERED", "ACCEPTED"):
            continue
        cause = (state.status, state.error_code, state.permanent is True)
        causes[_key(state, state.credited_carrier)][cause] += 1
    return dict(causes)


def expected_latencies(
    expected: Mapping[str, ExpectedState], grouping: Iterable[_Grouping] = _FINE
) -> dict[tuple[GroupKey, str], list[float | None]]:
    """Return every latency sample, in milliseconds, per group and metric.

    ``grouping`` names the dimensions kept, as ``GROUPING_*`` values; None
    stands for a sample whose time the ledger took from its own clock.
    """
    dimensions = set(grouping)
    samples: dict[tuple[GroupKey, str], list[float | None]] = defaultdict(list)
    for state in expected.values():
        for sample in state.latencies:
            key = _project((sample.carrier, state.country, state.cohort_hour), dimensions)
            samples[(key, sample.metric)].append(sample.milliseconds)
    return dict(samples)


def _project(key: GroupKey, dimensions: set[_Grouping]) -> GroupKey:
    carrier, country, hour = key
    return (
        carrier if readmodels_pb2.GROUPING_CARRIER in dimensions else "",
        country if readmodels_pb2.GROUPING_COUNTRY in dimensions else "",
        hour if readmodels_pb2.GROUPING_HOUR in dimensions else 0,
    )


# ------------------------------------------------------------------ comparing


def _name(key: GroupKey) -> str:
    carrier, country, hour = key
    parts = [carrier or "-"]
    if country:
        parts.append(country)
    if hour:
        parts.append(time.strftime("%Y-%m-%d %H:00Z", time.gmtime(hour)))
    return " ".join(parts)


def _reply_key(key: readmodels_pb2.GroupKey) -> GroupKey:
    hour = key.period_start.seconds if key.HasField("period_start") else 0
    return (key.carrier, key.country, hour)


def _within(estimate: float, exact: float, accuracy: float) -> bool:
    if exact < 1.0:
        # Latencies under 1 ms, and negative ones from clock skew, read as 0.
        return estimate == 0.0 or abs(estimate - exact) <= accuracy * max(exact, 1.0)
    return abs(estimate - exact) <= accuracy * exact * (1 + 1e-9)


def _span(expected: Mapping[str, ExpectedState]) -> tuple[int, int] | None:
    hours = [s.cohort_hour for s in expected.values()]
    if not hours:
        return None
    return min(hours), max(hours) + 3600


def _ts(seconds: int) -> Timestamp:
    value = Timestamp()
    value.FromSeconds(seconds)
    return value


def _status_name(value: int) -> str:
    return events_pb2.MessageStatus.Name(value).removeprefix("MESSAGE_STATUS_")  # type: ignore[arg-type]


def compare_causes(
    key: GroupKey, want: Counter[Cause], have: Counter[tuple[str, str, bool]]
) -> list[str]:
    """Compare one group's failure causes; an open error code may be any of its kind."""
    problems = []
    kinds = {(s, p) for s, _, p in want} | {(s, p) for s, _, p in have}
    for status, permanent in sorted(kinds):
        kind_want = {c: n for (s, c, p), n in want.items() if (s, p) == (status, permanent)}
        open_count = kind_want.pop(None, 0)
        named = {c: n for c, n in kind_want.items() if c is not None}
        found = {c: n for (s, c, p), n in have.items() if (s, p) == (status, permanent)}
        surplus = 0
        kind = f"{status}{' permanent' if permanent else ''}"
        for code in sorted(set(named) | set(found), key=str):
            expected_n, found_n = named.get(code, 0), found.get(code, 0)
            if found_n < expected_n or (found_n > expected_n and not open_count):
                problems.append(
                    f"{_name(key)}: {kind} cause {code or '(no code)'!s} counts {found_n} in "
                    f"the read model, {expected_n} in the ground truth"
                )
            surplus += max(0, found_n - expected_n)
        if open_count and surplus != open_count:
            problems.append(
                f"{_name(key)}: {open_count} {kind} cause(s) of any code in the ground truth, "
                f"{surplus} left over in the read model"
            )
    return problems


@dataclass(frozen=True)
class _Truth:
    """Everything the read models must show, computed once for every retry."""

    counts: dict[GroupKey, dict[str, int]]
    causes: dict[GroupKey, Counter[Cause]]
    latencies: tuple[dict[tuple[GroupKey, str], list[float | None]], ...]
    """Samples of each grouping of ``_LATENCY_GROUPINGS``, in that order."""

    @classmethod
    def of(cls, expected: Mapping[str, ExpectedState]) -> _Truth:
        """Compute the counts, causes and latencies that ``expected`` implies."""
        latencies = tuple(expected_latencies(expected, g) for g in _LATENCY_GROUPINGS)
        return cls(expected_counts(expected), expected_causes(expected), latencies)


async def _compare(
    stub: readmodels_pb2_grpc.ReadModelServiceAsyncStub,
    request: readmodels_pb2.StatisticsRequest,
    truth: _Truth,
) -> ReadModelCheck:
    result = ReadModelCheck()
    reply = await stub.GetCarrierPerformance(request)
    result.position = reply.position
    found: dict[GroupKey, dict[str, int]] = {}
    found_causes: dict[GroupKey, Counter[tuple[str, str, bool]]] = {}
    for group in reply.groups:
        key = _reply_key(group.key)
        found[key] = {name: int(getattr(group, name)) for name in COUNTERS}
        found_causes[key] = Counter(
            {
                (_status_name(c.status), c.error_code, c.permanent): int(c.count)
                for c in group.failure_causes
            }
        )
    per_carrier: dict[str, dict[str, list[int]]] = defaultdict(
        lambda: {name: [0, 0] for name in COUNTERS}
    )
    for key in sorted(set(truth.counts) | set(found)):
        want, have = truth.counts.get(key, _zero()), found.get(key, _zero())
        result.groups += 1
        for carrier in (TOTAL, key[0]):
            for name in COUNTERS:
                per_carrier[carrier][name][0] += want[name]
                per_carrier[carrier][name][1] += have[name]
        for name in COUNTERS:
            if want[name] != have[name]:
                result.problems.append(
                    f"{_name(key)}: {name} is {have[name]} in the read model, "
                    f"{want[name]} in the ground truth"
                )
        want_causes = truth.causes.get(key, Counter())
        result.causes_checked += len(want_causes)
        result.problems.extend(compare_causes(key, want_causes, found_causes.get(key, Counter())))
    result.counts = {
        carrier: {name: (pair[0], pair[1]) for name, pair in values.items()}
        for carrier, values in per_carrier.items()
    }
    for grouping, exact in zip(_LATENCY_GROUPINGS, truth.latencies, strict=True):
        del request.group_by[:]
        request.group_by.extend(grouping)
        await _compare_latency(stub, request, exact, result)
    return result


async def _compare_latency(
    stub: readmodels_pb2_grpc.ReadModelServiceAsyncStub,
    request: readmodels_pb2.StatisticsRequest,
    exact: Mapping[tuple[GroupKey, str], list[float | None]],
    result: ReadModelCheck,
) -> None:
    reply = await stub.GetLatency(request)
    result.relative_accuracy = reply.relative_accuracy
    reported: dict[tuple[GroupKey, str], readmodels_pb2.LatencyPercentiles] = {}
    for group in reply.groups:
        for metric in group.metrics:
            if metric.count:
                reported[(_reply_key(group.key), _METRICS[metric.metric])] = metric
    for key in sorted(set(exact) | set(reported)):
        group_key, metric_name = key
        values = exact.get(key, [])
        found = reported.get(key)
        count = 0 if found is None else found.count
        if found is None or count != len(values):
            result.problems.append(
                f"{_name(group_key)} {metric_name}: {count} samples in the read model, "
                f"{len(values)} in the ground truth"
            )
            continue
        known = [v for v in values if v is not None]
        if len(known) < len(values):
            result.latency_unchecked += 1
            continue
        ordered = sorted(known)
        for q, estimate in zip(_QUANTILES, (found.p50_ms, found.p90_ms, found.p99_ms), strict=True):
            value = ordered[math.floor(q * (len(ordered) - 1))]
            result.latency_checked += 1
            if not _within(estimate, value, reply.relative_accuracy):
                result.problems.append(
                    f"{_name(group_key)} {metric_name} p{round(q * 100)}: {estimate:.1f} ms in "
                    f"the read model, exact {value:.1f} ms, beyond the stated relative error "
                    f"{reply.relative_accuracy:g}"
                )


async def check_read_models(
    channel: grpc.aio.Channel,
    tenant: str,
    expected: Mapping[str, ExpectedState],
    *,
    wait_seconds: float = 60.0,
) -> ReadModelCheck:
    """Compare the read models with the truth once they have caught up.

    The comparison is repeated until it agrees or ``wait_seconds`` pass,
    because the read models follow the log a moment behind.
    """
    stub = readmodels_pb2_grpc.ReadModelServiceStub(channel)
    span = _span(expected)
    if span is None:
        result = ReadModelCheck()
        result.problems.append("the run has no messages; nothing to compare")
        return result
    truth = _Truth.of(expected)
    deadline = time.monotonic() + wait_seconds
    while True:
        request = readmodels_pb2.StatisticsRequest(
            tenant=tenant, start_time=_ts(span[0]), end_time=_ts(span[1]), group_by=_FINE
        )
        result = await _compare(stub, request, truth)
        if not result.failed or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.5)


def run_check(
    target: str,
    tenant: str,
    expected: Mapping[str, ExpectedState],
    *,
    wait_seconds: float = 60.0,
) -> ReadModelCheck:
    """Open a channel to ``target`` and run :func:`check_read_models`."""

    async def run() -> ReadModelCheck:
        async with open_channel(target) as channel:
            return await check_read_models(channel, tenant, expected, wait_seconds=wait_seconds)

    return asyncio.run(run())


# ------------------------------------------------------------------ probing


@dataclass(frozen=True)
class ReadModelProbe:
    """Whether a server's read models can be checked for a tenant.

    Attributes:
        state: ``ready`` when the server serves read-model queries and the
            tenant has no message there yet. ``absent`` when the server serves
            no read models, ``denied`` when the token may not read them, and
            ``used`` when the tenant already has messages.
        position: Log position of the message list at the probe.
        detail: What the server said, for the operator.
    """

    state: Literal["ready", "absent", "denied", "used"]
    position: int = 0
    detail: str = ""


async def probe_read_models(channel: grpc.aio.Channel, tenant: str) -> ReadModelProbe:
    """Ask the server whether it serves read models, and whether ``tenant`` is still empty."""
    stub = readmodels_pb2_grpc.ReadModelServiceStub(channel)
    request = readmodels_pb2.ListMessagesRequest(tenant=tenant, page_size=1)
    try:
        reply = await stub.ListMessages(request, timeout=10)
    except grpc.aio.AioRpcError as error:
        detail = f"{error.code().name}: {error.details()}"
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            return ReadModelProbe("absent", detail=detail)
        if error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            return ReadModelProbe("denied", detail=detail)
        raise
    if reply.messages:
        return ReadModelProbe("used", reply.position)
    return ReadModelProbe("ready", reply.position)


async def wait_for_progress(
    channel: grpc.aio.Channel, tenant: str, since: int, wait_seconds: float
) -> bool:
    """Return True once the read models reflect a log position after ``since``."""
    stub = readmodels_pb2_grpc.ReadModelServiceStub(channel)
    request = readmodels_pb2.ListMessagesRequest(tenant=tenant, page_size=1)
    deadline = time.monotonic() + wait_seconds
    while True:
        reply = await stub.ListMessages(request, timeout=10)
        if reply.position > since:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)


def run_probe(target: str, tenant: str) -> ReadModelProbe:
    """Open a channel to ``target`` and run :func:`probe_read_models`."""

    async def run() -> ReadModelProbe:
        async with open_channel(target) as channel:
            return await probe_read_models(channel, tenant)

    return asyncio.run(run())


def run_wait_for_progress(target: str, tenant: str, since: int, wait_seconds: float) -> bool:
    """Open a channel to ``target`` and run :func:`wait_for_progress`."""

    async def run() -> bool:
        async with open_channel(target) as channel:
            return await wait_for_progress(channel, tenant, since, wait_seconds)

    return asyncio.run(run())


def print_check(console: Console, check: ReadModelCheck, limit: int = 20) -> None:
    """Print the comparison table and the first ``limit`` problems."""
    console.print(check.table())
    unchecked = (
        f", {check.latency_unchecked} group(s) with ledger-clock times compared by count only"
        if check.latency_unchecked
        else ""
    )
    console.print(
        f"read models at log position {check.position}: {check.groups} carrier/country/hour "
        f"groups, {check.causes_checked} failure causes, {check.latency_checked} latency "
        f"percentiles compared within relative error {check.relative_accuracy:g}{unchecked}"
    )
    if not check.problems:
        console.print("[bold green]read models agree with the ground truth[/]")
        return
    console.print(f"[bold red]{len(check.problems)} read-model disagreement(s):[/]")
    for problem in check.problems[:limit]:
        console.print(f"  {problem}")
