"""Messages and command results as ``ledger.v1`` protobuf messages."""

from __future__ import annotations

from typing import Any

from google.protobuf.duration_pb2 import Duration

from ledger.application.results import CommandResult, Disposition
from ledger.domain.message import Message
from ledger.domain.outcomes import Outcome, Status
from ledger.errors import LedgerError
from ledger.protocol.events import STATUS_TO_PROTO, timestamp
from ledger.protocol.status import error_to_status
from ledger.v1 import events_pb2, ledger_pb2

__all__ = ["message_state", "result_to_proto"]

_DISPOSITIONS = {
    Disposition.RECORDED: ledger_pb2.RECEIPT_DISPOSITION_RECORDED,
    Disposition.DUPLICATE: ledger_pb2.RECEIPT_DISPOSITION_DUPLICATE,
    Disposition.PARKED: ledger_pb2.RECEIPT_DISPOSITION_PARKED,
}


def _outcome_fields(outcome: Outcome) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "status": STATUS_TO_PROTO[outcome.status.value],
        "final": outcome.final,
        "error_code": outcome.error_code or "",
    }
    if outcome.permanent is not None:
        fields["permanent"] = outcome.permanent
    return fields


def message_state(message: Message, duplicate_count: int) -> ledger_pb2.MessageState:
    """Build the ``MessageState`` of a message rebuilt from its events."""
    outcome = message.outcome
    source = message.outcome_attempt
    first = message.attempts[0]
    accepted = next((a.accepted_at for a in message.attempts if a.accepted_at), None)
    delivered_at = outcome.at if outcome.final and outcome.status is Status.DELIVERED else None
    state = ledger_pb2.MessageState(
        tenant=message.tenant,
        message_id=message.message_id,
        aggregate_id=str(message.id),
        version=message.version,
        error_table=outcome.error_table or "",
        carrier=source.carrier,
        destination_masked=message.destination.masked,
        country=message.destination.country,
        attempt_count=len(message.attempts),
        segment_count=message.current_attempt.segment_count,
        conflict=message.conflict,
        duplicate_count=duplicate_count,
        expiry_inferred=outcome.inferred,
        submitted_at=timestamp(first.submitted_at),
        accepted_at=timestamp(accepted),
        delivered_at=timestamp(delivered_at),
        final_at=timestamp(outcome.at if outcome.final else None),
        updated_at=timestamp(message.modified_on),
        **_outcome_fields(outcome),
    )
    for attempt in message.attempts:
        attempt_outcome = attempt.outcome
        item = state.attempts.add(
            attempt=attempt.number,
            carrier=attempt.carrier,
            error_table=attempt_outcome.error_table or "",
            submitted_at=timestamp(attempt.submitted_at),
            accepted_at=timestamp(attempt.accepted_at),
            final_at=timestamp(attempt_outcome.at if attempt_outcome.final else None),
            validity_period=Duration(seconds=int(attempt.validity.total_seconds())),
            **_outcome_fields(attempt_outcome),
        )
        for segment in attempt.segments:
            item.segments.add(
                segment=segment.number,
                carrier_message_id=segment.carrier_message_id or attempt.whole_message_id or "",
                inferred=segment.outcome.inferred,
                **_outcome_fields(segment.outcome),
            )
    return state


def result_to_proto(result: CommandResult | LedgerError, index: int) -> ledger_pb2.CommandResult:
    """Build the ``CommandResult`` of a command: its result, or its error status."""
    if isinstance(result, LedgerError):
        return ledger_pb2.CommandResult(index=index, status=error_to_status(result))
    proto = ledger_pb2.CommandResult(
        index=index,
        replayed=result.replayed,
        duplicate=result.duplicate,
        tenant=result.tenant,
        message_id=result.message_id,
        aggregate_id=str(result.aggregate_id) if result.aggregate_id else "",
        version=result.version,
        message_status=STATUS_TO_PROTO[result.status.value]
        if result.status
        else events_pb2.MESSAGE_STATUS_UNSPECIFIED,
        receipt_disposition=_DISPOSITIONS[result.disposition]
        if result.disposition
        else ledger_pb2.RECEIPT_DISPOSITION_UNSPECIFIED,
    )
    proto.status.code = 0
    for ref in result.events:
        proto.events.add(event_id=str(ref.event_id), type=ref.type, version=ref.version)
    if result.retry is not None:
        proto.retry_advice.retry = result.retry.retry
        proto.retry_advice.attempts_left = result.retry.attempts_left
        proto.retry_advice.reason = result.retry.reason
        if result.retry.not_before is not None:
            proto.retry_advice.not_before.FromDatetime(result.retry.not_before)
    for position, receipt in enumerate(result.receipts):
        proto.receipts.append(result_to_proto(receipt, position))
    proto.warnings.extend(result.warnings)
    return proto
