"""Per-carrier summary of a run, its console table and its JSON report."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from ledger.simulate.compare import Mismatch
from ledger.simulate.driver import CommandProblem, DriveStats
from ledger.simulate.steps import MessagePlan
from ledger.simulate.truth import ExpectedState
from ledger.v1 import events_pb2, ledger_pb2

__all__ = ["CarrierRow", "RunInfo", "summarize", "summary_table", "write_json_report"]


@dataclass
class CarrierRow:
    """Outcome counts of the messages credited to one carrier connection.

    A message is credited to the connection of the attempt that produced its
    status, as the server reports it (the truth's, when the server has none).
    """

    carrier: str
    messages: int = 0
    delivered: int = 0
    failed: int = 0
    expired: int = 0
    expired_inferred: int = 0
    rejected: int = 0
    accepted_final: int = 0
    other: int = 0
    conflicts: int = 0
    duplicates: int = 0
    parked: int = 0
    mismatches: int = 0


@dataclass(frozen=True)
class RunInfo:
    """Identity, pacing and timing of a run, for the report."""

    run_id: str
    seed: int
    tenant: str
    target: str
    messages: int
    mode: str
    drive_seconds: float
    check_seconds: float
    scenario_counts: Mapping[str, int] = field(default_factory=dict)


def _status_name(value: int) -> str:
    return events_pb2.MessageStatus.Name(value).removeprefix("MESSAGE_STATUS_")  # type: ignore[arg-type]


def summarize(
    plans: Sequence[MessagePlan],
    expected: Mapping[str, ExpectedState],
    states: Mapping[str, ledger_pb2.MessageState | None],
    mismatches: Sequence[Mismatch],
    stats: DriveStats,
) -> list[CarrierRow]:
    """Count outcomes per carrier connection, sorted by connection name."""
    rows: dict[str, CarrierRow] = {}
    mismatched = {m.message_id for m in mismatches}
    for plan in plans:
        state = states.get(plan.message_id)
        truth = expected[plan.message_id]
        if state is not None:
            carrier = state.carrier
            status, final, inferred = _status_name(state.status), state.final, state.expiry_inferred
            conflict, duplicates = state.conflict, state.duplicate_count
        else:
            carrier = truth.carrier or plan.carrier
            status, final, inferred = truth.status, truth.final, truth.expiry_inferred
            conflict, duplicates = truth.conflict, truth.duplicate_count
        row = rows.setdefault(carrier, CarrierRow(carrier))
        row.messages += 1
        if status == "DELIVERED":
            row.delivered += 1
        elif status == "FAILED":
            row.failed += 1
        elif status == "EXPIRED":
            row.expired += 1
            row.expired_inferred += int(inferred)
        elif status == "REJECTED":
            row.rejected += 1
        elif status == "ACCEPTED" and final:
            row.accepted_final += 1
        else:
            row.other += 1
        row.conflicts += int(conflict)
        row.duplicates += duplicates
        row.mismatches += int(plan.message_id in mismatched)
    for connection, count in stats.parked.items():
        rows.setdefault(connection, CarrierRow(connection)).parked += count
    return [rows[name] for name in sorted(rows)]


def summary_table(rows: Sequence[CarrierRow]) -> Table:
    """Return the per-carrier summary as a rich table, with a total row."""
    table = Table(title="Outcomes per carrier connection")
    headers = [
        "carrier",
        "messages",
        "delivered",
        "failed",
        "expired (inferred)",
        "rejected",
        "accepted-final",
        "other",
        "conflicts",
        "duplicates",
        "parked",
        "mismatches",
    ]
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right")
    total = CarrierRow("total")
    for row in rows:
        for name in asdict(row):
            if name != "carrier":
                setattr(total, name, getattr(total, name) + getattr(row, name))
    for row in [*rows, total]:
        table.add_row(
            row.carrier,
            str(row.messages),
            str(row.delivered),
            str(row.failed),
            f"{row.expired} ({row.expired_inferred})",
            str(row.rejected),
            str(row.accepted_final),
            str(row.other),
            str(row.conflicts),
            str(row.duplicates),
            str(row.parked),
            str(row.mismatches),
            style="bold" if row is total else None,
        )
    return table


def write_json_report(
    path: Path,
    info: RunInfo,
    plans: Sequence[MessagePlan],
    expected: Mapping[str, ExpectedState],
    rows: Sequence[CarrierRow],
    mismatches: Sequence[Mismatch],
    problems: Sequence[CommandProblem],
) -> None:
    """Write the run's ground truth, summary and findings as one JSON document.

    ``truth`` maps each message id to its scenario, first connection and
    expected state; ``error_code`` and ``carrier`` are null where the rules
    leave them open.
    """
    document: dict[str, Any] = {
        "run": asdict(info),
        "summary": [asdict(row) for row in rows],
        "mismatch_count": len(mismatches),
        "mismatches": [
            {
                "message_id": m.message_id,
                "differences": [
                    {"field": d.field, "expected": d.expected, "actual": d.actual}
                    for d in m.differences
                ],
            }
            for m in mismatches
        ],
        "command_problems": [asdict(p) for p in problems],
        "truth": {
            plan.message_id: {
                "scenario": plan.scenario,
                "first_carrier": plan.carrier,
                **asdict(expected[plan.message_id]),
            }
            for plan in plans
        },
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
