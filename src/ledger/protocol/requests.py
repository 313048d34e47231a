"""``ledger.v1`` requests as ledger commands.

Only what the protobuf form itself can get wrong is checked here (unknown enum
numbers, negative durations); the commands validate their own fields.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.application.commands import (
    Command,
    RawInput,
    RecordAcceptance,
    RecordRawReceipt,
    RecordReceipt,
    SubmitMessage,
)
from ledger.domain.outcomes import Status
from ledger.errors import FieldViolation, InvalidArgumentError
from ledger.v1 import ledger_pb2

__all__ = [
    "acceptance_from_proto",
    "command_from_proto",
    "raw_receipt_from_proto",
    "receipt_from_proto",
    "submit_from_proto",
]

_RECEIPT_STATUSES = {
    ledger_pb2.RECEIPT_STATUS_ENROUTE: Status.ENROUTE,
    ledger_pb2.RECEIPT_STATUS_ACCEPTED: Status.ACCEPTED,
    ledger_pb2.RECEIPT_STATUS_DELIVERED: Status.DELIVERED,
    ledger_pb2.RECEIPT_STATUS_FAILED: Status.FAILED,
    ledger_pb2.RECEIPT_STATUS_EXPIRED: Status.EXPIRED,
    ledger_pb2.RECEIPT_STATUS_REJECTED: Status.REJECTED,
    ledger_pb2.RECEIPT_STATUS_UNKNOWN: Status.UNKNOWN,
}


def _time(message: object, name: str, value: Timestamp) -> datetime | None:
    if not message.HasField(name):  # type: ignore[attr-defined]
        return None
    if not 0 <= value.nanos < 1_000_000_000:
        raise InvalidArgumentError(FieldViolation(name, "has nanos outside 0..999999999"))
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:
        raise InvalidArgumentError(FieldViolation(name, f"is out of range: {error}")) from error


def _duration(message: object, name: str, value: Duration) -> timedelta | None:
    if not message.HasField(name):  # type: ignore[attr-defined]
        return None
    if value.seconds < 0 or value.nanos < 0:
        raise InvalidArgumentError(FieldViolation(name, "is negative"))
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def submit_from_proto(request: ledger_pb2.SubmitMessageRequest) -> SubmitMessage:
    """Build a Submit command."""
    return SubmitMessage(
        tenant=request.tenant,
        message_id=request.message_id,
        destination=request.destination,
        sender=request.sender,
        carrier=request.carrier,
        segment_count=request.segment_count or 1,
        validity=_duration(request, "validity_period", request.validity_period),
        attempt=request.attempt or 1,
        request_id=request.request_id or None,
        submitted_at=_time(request, "submitted_at", request.submitted_at),
    )


def acceptance_from_proto(request: ledger_pb2.RecordAcceptanceRequest) -> RecordAcceptance:
    """Build an acceptance command."""
    return RecordAcceptance(
        tenant=request.tenant,
        message_id=request.message_id,
        attempt=request.attempt,
        segments=tuple((s.segment, s.carrier_message_id) for s in request.segments),
        accepted_at=_time(request, "accepted_at", request.accepted_at),
        request_id=request.request_id or None,
    )


def receipt_from_proto(request: ledger_pb2.RecordReceiptRequest) -> RecordReceipt:
    """Build a normalized-receipt command."""
    status = _RECEIPT_STATUSES.get(request.status)
    if status is None:
        raise InvalidArgumentError(
            FieldViolation(
                "status",
                f"{request.status} is not a receipt status: use RECEIPT_STATUS_ENROUTE, "
                "_ACCEPTED, _DELIVERED, _FAILED, _EXPIRED, _REJECTED or _UNKNOWN",
            )
        )
    raw = None
    if request.HasField("raw"):
        raw = RawInput(
            body=request.raw.body,
            content_type=request.raw.content_type,
            format=request.raw.format,
            source=request.raw.source,
        )
    target = request.WhichOneof("target")
    message_id = carrier_id = connection = None
    attempt = segment = 0
    if target == "message":
        message_id = request.message.message_id
        attempt = request.message.attempt
        segment = request.message.segment
    elif target == "carrier":
        connection = request.carrier.connection
        carrier_id = request.carrier.carrier_message_id
    return RecordReceipt(
        tenant=request.tenant,
        status=status,
        message_id=message_id,
        attempt=attempt,
        segment=segment,
        connection=connection,
        carrier_message_id=carrier_id,
        final=request.final,
        permanent=request.permanent if request.HasField("permanent") else None,
        error_code=request.error_code or None,
        error_table=request.error_table or None,
        occurred_at=_time(request, "occurred_at", request.occurred_at),
        raw=raw,
        request_id=request.request_id or None,
    )


def raw_receipt_from_proto(request: ledger_pb2.RecordRawReceiptRequest) -> RecordRawReceipt:
    """Build a raw-receipt command."""
    return RecordRawReceipt(
        tenant=request.tenant,
        connection=request.connection,
        body=request.body,
        content_type=request.content_type,
        format=request.format,
        metadata=tuple(sorted(request.metadata.items())),
        source=request.source,
        request_id=request.request_id or None,
    )


def command_from_proto(command: ledger_pb2.Command) -> Command:
    """Build the command a batch entry carries.

    Raises:
        InvalidArgumentError: The entry carries no command or an invalid one.
    """
    kind = command.WhichOneof("command")
    if kind == "submit":
        return submit_from_proto(command.submit)
    if kind == "acceptance":
        return acceptance_from_proto(command.acceptance)
    if kind == "receipt":
        return receipt_from_proto(command.receipt)
    if kind == "raw_receipt":
        return raw_receipt_from_proto(command.raw_receipt)
    raise InvalidArgumentError(FieldViolation("command", "is empty: set one command"))
