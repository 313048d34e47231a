"""Joining the Infobip reports of one ExecuteBatch call into shared payloads.

Infobip posts up to 100 reports in one request. In batch mode the driver
sends the next command of many messages in one call, so the Infobip reports
among them are joined into one raw receipt, and each message's result is
then taken from that receipt's per-report results. Reports with a request id
or metadata stay on their own, because both belong to one report.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.simulate.formats.infobip import merge_reports
from ledger.v1 import ledger_pb2

__all__ = ["MAX_REPORTS", "Slot", "join_reports", "result_for"]

MAX_REPORTS = 100
"""Reports per joined payload, Infobip's default bucket size."""

Slot = tuple[int, int | None]
"""Location of a command's result: position in the sent batch, and report index or None."""


def join_reports(
    commands: Sequence[ledger_pb2.Command], connections: frozenset[str]
) -> tuple[list[ledger_pb2.Command], list[Slot]]:
    """Join the raw receipts on ``connections`` into multi-report payloads.

    Returns:
        The commands to send, and for each input command its slot.
    """
    sent: list[ledger_pb2.Command] = []
    slots: list[Slot] = []
    open_group: dict[tuple[str, str], int] = {}
    bodies: dict[int, list[bytes]] = {}
    for command in commands:
        raw = command.raw_receipt if command.WhichOneof("command") == "raw_receipt" else None
        if raw is None or raw.connection not in connections or raw.request_id or raw.metadata:
            slots.append((len(sent), None))
            sent.append(command)
            continue
        key = (raw.tenant, raw.connection)
        position = open_group.get(key)
        if position is None or len(bodies[position]) >= MAX_REPORTS:
            position = len(sent)
            open_group[key] = position
            bodies[position] = []
            joined = ledger_pb2.Command()
            joined.CopyFrom(command)
            sent.append(joined)
        slots.append((position, len(bodies[position])))
        bodies[position].append(raw.body)
    for position, parts in bodies.items():
        if len(parts) > 1:
            sent[position].raw_receipt.body = merge_reports(parts)
    return sent, slots


def result_for(results: Sequence[ledger_pb2.CommandResult], slot: Slot) -> ledger_pb2.CommandResult:
    """Return the result of the command in ``slot``.

    A joined payload's result lists one result per report. Without that list
    (one report, or a failure of the whole payload) its own result applies.
    """
    position, report = slot
    result = results[position]
    if report is None or not result.receipts:
        return result
    single = ledger_pb2.CommandResult()
    single.CopyFrom(result.receipts[report])
    single.warnings.extend(result.warnings)
    return single
