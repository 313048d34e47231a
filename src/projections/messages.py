"""The current-state read model: one row per message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.domain.outcomes import Status
from projections.base import Change, Projection, StagedWrites, Upsert
from projections.fold import MessageFold, to_micros
from projections.tables import MESSAGES

__all__ = ["MessagesProjection", "message_row"]


def message_row(change: Change) -> tuple[Any, ...]:
    """Return the ``rm_messages`` row of a message, in column order.

    The fields follow the ledger's ``GetMessage`` response: ``carrier`` is the
    carrier of the attempt that produced the status, ``accepted_at`` the first
    acceptance of any attempt, and the error is the one of the current
    outcome (none once delivered).
    """
    fold: MessageFold = change.fold
    outcome = fold.outcome
    carriers: list[str] = []
    for attempt in fold.attempts:
        if attempt.carrier not in carriers:
            carriers.append(attempt.carrier)
    accepted = next((a.accepted_at for a in fold.attempts if a.accepted_at), None)
    delivered = outcome.final and outcome.status is Status.DELIVERED
    error_class = None
    if outcome.error_code:
        error_class = "permanent" if outcome.permanent else "transient"
    return (
        fold.aggregate_id,
        fold.tenant,
        fold.message_id,
        outcome.status.value,
        int(outcome.final),
        None if outcome.permanent is None else int(outcome.permanent),
        outcome.error_code,
        outcome.error_table,
        error_class,
        fold.outcome_attempt.carrier,
        ",".join(carriers),
        fold.country,
        len(fold.attempts),
        fold.attempts[-1].segment_count,
        int(fold.conflict),
        int(outcome.inferred),
        to_micros(fold.submitted_at),
        None if accepted is None else to_micros(accepted),
        to_micros(outcome.at) if delivered and outcome.at else None,
        to_micros(outcome.at) if outcome.final and outcome.at else None,
        to_micros(fold.updated_at),
        fold.version,
        change.fold_json,
    )


class MessagesProjection(Projection):
    """Current state per message (``rm_messages``)."""

    name = "messages"
    # Each row is replaced whole, so nothing from before a batch is needed.
    needs_contribution = False
    specs = (MESSAGES,)
    fold_spec = MESSAGES

    def stage(self, changes: Sequence[Change]) -> StagedWrites:
        """Compute the new row of each changed message."""
        columns = MESSAGES.column_types
        updates = ", ".join(f"{c} = excluded.{c}" for c, _ in columns[1:])
        rows = [message_row(c) for c in changes]
        conflict = f"ON CONFLICT (aggregate_id) DO UPDATE SET {updates}"
        return StagedWrites([Upsert(self.table(MESSAGES), columns, rows, conflict)])
