"""After a simulation: check the read models against the ground truth.

Carrier performance counts must equal counts computed from the simulator's
expected message states, by the read models' rule: a message counts once, on
the carrier of the attempt that produced its outcome. Latency percentiles must
lie within the histograms' relative accuracy of the exact percentiles of the
latencies that the ledger's own message states show (``GetMessage``: each
attempt's submission, acceptance and delivery time).

The check needs a tenant that holds only this run's messages, because the
statistics are kept per tenant, carrier, country and hour.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

from ledger.simulate.channels import open_channel
from ledger.simulate.truth import ExpectedState
from ledger.v1 import events_pb2, ledger_pb2, readmodels_pb2, readmodels_pb2_grpc

__all__ = ["ReadModelCheck", "check_read_models", "exact_latencies", "expected_counts"]

COUNTERS = (
    "submitted",
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
)
"""Counters compared per carrier; ``accepted`` is left out, as the truth does not model it."""

_METRICS = {
    readmodels_pb2.LATENCY_METRIC_SUBMIT_TO_ACCEPTED: "submit_to_accepted",
    readmodels_pb2.LATENCY_METRIC_SUBMIT_TO_DELIVERED: "submit_to_delivered",
    readmodels_pb2.LATENCY_METRIC_ACCEPTED_TO_DELIVERED: "accepted_to_delivered",
}
_QUANTILES = (0.5, 0.9, 0.99)
TOTAL = "(all carriers)"


@dataclass
class ReadModelCheck:
    """Result of the read-model check.

    Attributes:
        counts: Per carrier, ``(expected, read model)`` of each counter.
        latency_checked: Percentiles compared.
        problems: Every disagreement, as a sentence.
        relative_accuracy: The histograms' stated relative error.
        position: Log position the read models reflected.
    """

    counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    latency_checked: int = 0
    problems: list[str] = field(default_factory=list)
    relative_accuracy: float = 0.0
    position: int = 0

    @property
    def failed(self) -> bool:
        """True when any count or percentile disagrees."""
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


def expected_counts(expected: Mapping[str, ExpectedState]) -> dict[str, dict[str, int]]:
    """Return the carrier performance counts the truth implies, per carrier and in total.

    Messages whose credited carrier the rules leave open count in the total only.
    """
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for state in expected.values():
        carriers = [TOTAL] if state.carrier is None else [TOTAL, state.carrier]
        finals = {
            "delivered": state.final and state.status == "DELIVERED",
            "failed_permanent": state.final and state.status == "FAILED" and bool(state.permanent),
            "failed_transient": state.final and state.status == "FAILED" and not state.permanent,
            "rejected": state.final and state.status == "REJECTED",
            "expired": state.final and state.status == "EXPIRED",
            "unknown": state.final and state.status == "UNKNOWN",
            "accepted_final": state.final and state.status == "ACCEPTED",
        }
        for carrier in carriers:
            row = counts[carrier]
            row["submitted"] += 1
            row["conflicts"] += int(state.conflict)
            row["expired_inferred"] += int(state.final and state.expiry_inferred)
            row["pending"] += int(not state.final)
            for name, hit in finals.items():
                row[name] += int(hit)
    return dict(counts)


def _micros(value: Timestamp) -> int:
    return value.seconds * 1_000_000 + value.nanos // 1000


def exact_latencies(
    states: Mapping[str, ledger_pb2.MessageState | None],
) -> dict[tuple[str, str], list[float]]:
    """Return every latency sample, in milliseconds, per (carrier, metric), from message states."""
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for state in states.values():
        if state is None:
            continue
        for attempt in state.attempts:
            submitted = _micros(attempt.submitted_at)
            accepted = _micros(attempt.accepted_at) if attempt.HasField("accepted_at") else None
            if accepted is not None:
                samples[(attempt.carrier, "submit_to_accepted")].append(
                    (accepted - submitted) / 1000
                )
            delivered = (
                attempt.final
                and attempt.status == events_pb2.MESSAGE_STATUS_DELIVERED
                and attempt.HasField("final_at")
            )
            if delivered:
                done = _micros(attempt.final_at)
                samples[(attempt.carrier, "submit_to_delivered")].append((done - submitted) / 1000)
                if accepted is not None:
                    samples[(attempt.carrier, "accepted_to_delivered")].append(
                        (done - accepted) / 1000
                    )
    return dict(samples)


def _within(estimate: float, exact: float, accuracy: float) -> bool:
    if exact < 1.0:
        # Latencies under 1 ms, and negative ones from clock skew, read as 0.
        return estimate == 0.0 or abs(estimate - exact) <= accuracy * max(exact, 1.0)
    return abs(estimate - exact) <= accuracy * exact * (1 + 1e-9)


def _range(states: Mapping[str, ledger_pb2.MessageState | None]) -> tuple[int, int] | None:
    times = [
        s.submitted_at.seconds
        for s in states.values()
        if s is not None and s.HasField("submitted_at")
    ]
    if not times:
        return None
    return min(times) - min(times) % 3600, max(times) + 3600


def _ts(seconds: int) -> Timestamp:
    value = Timestamp()
    value.FromSeconds(seconds)
    return value


async def check_read_models(
    channel: grpc.aio.Channel,
    tenant: str,
    expected: Mapping[str, ExpectedState],
    states: Mapping[str, ledger_pb2.MessageState | None],
    *,
    wait_seconds: float = 60.0,
) -> ReadModelCheck:
    """Compare the read models with the truth once they have caught up.

    Counts are read again until they equal the truth or ``wait_seconds`` pass,
    because the read models follow the log a moment behind.
    """
    stub = readmodels_pb2_grpc.ReadModelServiceStub(channel)
    result = ReadModelCheck()
    span = _range(states)
    if span is None:
        result.problems.append("no message state was read back; nothing to compare")
        return result
    request = readmodels_pb2.StatisticsRequest(
        tenant=tenant,
        start_time=_ts(span[0]),
        end_time=_ts(span[1]),
        group_by=[readmodels_pb2.GROUPING_CARRIER],
    )
    truth = expected_counts(expected)
    deadline = time.monotonic() + wait_seconds
    while True:
        reply = await stub.GetCarrierPerformance(request)
        found = _found_counts(reply)
        if all(found.get(c, {}) == _subset(truth[c]) for c in truth) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    result.position = reply.position
    for carrier in sorted(set(truth) | set(found)):
        want = truth.get(carrier, dict.fromkeys(COUNTERS, 0))
        have = found.get(carrier, dict.fromkeys(COUNTERS, 0))
        result.counts[carrier] = {name: (want[name], have[name]) for name in COUNTERS}
        if carrier == TOTAL or carrier in truth:
            for name in COUNTERS:
                if want[name] != have[name]:
                    result.problems.append(
                        f"{carrier}: {name} is {have[name]} in the read model, "
                        f"{want[name]} in the ground truth"
                    )
    await _check_latency(stub, request, states, result)
    return result


def _subset(row: dict[str, int]) -> dict[str, int]:
    return {name: row[name] for name in COUNTERS}


def _found_counts(
    reply: readmodels_pb2.CarrierPerformanceResponse,
) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {TOTAL: dict.fromkeys(COUNTERS, 0)}
    for group in reply.groups:
        row = {name: int(getattr(group, name)) for name in COUNTERS}
        found[group.key.carrier] = row
        for name in COUNTERS:
            found[TOTAL][name] += row[name]
    return found


async def _check_latency(
    stub: readmodels_pb2_grpc.ReadModelServiceAsyncStub,
    request: readmodels_pb2.StatisticsRequest,
    states: Mapping[str, ledger_pb2.MessageState | None],
    result: ReadModelCheck,
) -> None:
    reply = await stub.GetLatency(request)
    result.relative_accuracy = reply.relative_accuracy
    exact = exact_latencies(states)
    reported: dict[tuple[str, str], readmodels_pb2.LatencyPercentiles] = {}
    for group in reply.groups:
        for metric in group.metrics:
            reported[(group.key.carrier, _METRICS[metric.metric])] = metric
    for key, values in sorted(exact.items()):
        carrier, metric_name = key
        found = reported.get(key)
        if found is None or found.count != len(values):
            result.problems.append(
                f"{carrier} {metric_name}: {0 if found is None else found.count} samples in the "
                f"read model, {len(values)} in the message states"
            )
            continue
        ordered = sorted(values)
        for q, estimate in zip(_QUANTILES, (found.p50_ms, found.p90_ms, found.p99_ms), strict=True):
            value = ordered[math.floor(q * (len(ordered) - 1))]
            result.latency_checked += 1
            if not _within(estimate, value, reply.relative_accuracy):
                result.problems.append(
                    f"{carrier} {metric_name} p{round(q * 100)}: {estimate:.1f} ms in the read "
                    f"model, exact {value:.1f} ms, beyond the stated relative error "
                    f"{reply.relative_accuracy:g}"
                )


def run_check(
    target: str,
    tenant: str,
    expected: Mapping[str, ExpectedState],
    states: Mapping[str, ledger_pb2.MessageState | None],
    *,
    wait_seconds: float = 60.0,
) -> ReadModelCheck:
    """Open a channel to ``target`` and run :func:`check_read_models`."""

    async def run() -> ReadModelCheck:
        async with open_channel(target) as channel:
            return await check_read_models(
                channel, tenant, expected, states, wait_seconds=wait_seconds
            )

    return asyncio.run(run())


def print_check(console: Console, check: ReadModelCheck, limit: int = 20) -> None:
    """Print the comparison table and the first ``limit`` problems."""
    console.print(check.table())
    console.print(
        f"read models at log position {check.position}; {check.latency_checked} latency "
        f"percentiles compared within relative error {check.relative_accuracy:g}"
    )
    if not check.problems:
        console.print("[bold green]read models agree with the ground truth[/]")
        return
    console.print(f"[bold red]{len(check.problems)} read-model disagreement(s):[/]")
    for problem in check.problems[:limit]:
        console.print(f"  {problem}")
