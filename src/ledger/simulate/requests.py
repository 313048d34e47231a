"""Script steps as ``ledger.v1`` requests."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.simulate.steps import Accept, RawPayload, Receipt, Submit
from ledger.v1 import ledger_pb2

__all__ = ["SENDER", "to_command"]

SENDER = "SIMLEDGER"
"""Sender id of every simulated message."""

_RECEIPT_STATUS = {
    "ENROUTE": ledger_pb2.RECEIPT_STATUS_ENROUTE,
    "ACCEPTED": ledger_pb2.RECEIPT_STATUS_ACCEPTED,
    "DELIVERED": ledger_pb2.RECEIPT_STATUS_DELIVERED,
    "FAILED": ledger_pb2.RECEIPT_STATUS_FAILED,
    "EXPIRED": ledger_pb2.RECEIPT_STATUS_EXPIRED,
    "REJECTED": ledger_pb2.RECEIPT_STATUS_REJECTED,
    "UNKNOWN": ledger_pb2.RECEIPT_STATUS_UNKNOWN,
}


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _submit(tenant: str, message_id: str, step: Submit) -> ledger_pb2.SubmitMessageRequest:
    return ledger_pb2.SubmitMessageRequest(
        tenant=tenant,
        message_id=message_id,
        destination=step.destination,
        sender=SENDER,
        carrier=step.carrier,
        segment_count=step.segment_count,
        validity_period=Duration(seconds=step.validity_seconds),
        attempt=step.attempt,
        request_id=step.request_id,
        submitted_at=_timestamp(step.submitted_at),
    )


def _accept(tenant: str, message_id: str, step: Accept) -> ledger_pb2.RecordAcceptanceRequest:
    return ledger_pb2.RecordAcceptanceRequest(
        tenant=tenant,
        message_id=message_id,
        attempt=step.attempt,
        segments=[
            ledger_pb2.SegmentAcceptance(segment=segment, carrier_message_id=carrier_id)
            for segment, carrier_id in step.segments
        ],
        accepted_at=_timestamp(step.accepted_at),
        request_id=step.request_id,
    )


def _receipt(tenant: str, message_id: str, step: Receipt) -> ledger_pb2.RecordReceiptRequest:
    request = ledger_pb2.RecordReceiptRequest(
        tenant=tenant,
        status=_RECEIPT_STATUS[step.status],
        final=step.is_final,
        error_code=step.error_code,
        error_table=step.error_table,
        occurred_at=_timestamp(step.occurred_at),
        request_id=step.request_id,
    )
    if step.permanent is not None:
        request.permanent = step.permanent
    if step.by_carrier_id:
        request.carrier.connection = step.connection
        request.carrier.carrier_message_id = step.carrier_message_id
    else:
        request.message.message_id = message_id
        request.message.attempt = step.attempt
        request.message.segment = step.segment
    return request


def _raw_receipt(
    tenant: str, connection: str, step: Receipt, raw: RawPayload
) -> ledger_pb2.RecordRawReceiptRequest:
    return ledger_pb2.RecordRawReceiptRequest(
        tenant=tenant,
        connection=connection,
        format=raw.format,
        content_type=raw.content_type,
        body=raw.body,
        metadata=dict(raw.metadata),
        source="simulator",
        request_id=step.request_id,
    )


def to_command(tenant: str, message_id: str, step: Submit | Accept | Receipt) -> ledger_pb2.Command:
    """Return the batch entry that carries ``step`` for message ``message_id``.

    A receipt with a raw payload becomes a ``raw_receipt`` entry on the
    receipt's connection.
    """
    if isinstance(step, Submit):
        return ledger_pb2.Command(submit=_submit(tenant, message_id, step))
    if isinstance(step, Accept):
        return ledger_pb2.Command(acceptance=_accept(tenant, message_id, step))
    if step.raw is not None:
        return ledger_pb2.Command(raw_receipt=_raw_receipt(tenant, step.connection, step, step.raw))
    return ledger_pb2.Command(receipt=_receipt(tenant, message_id, step))
