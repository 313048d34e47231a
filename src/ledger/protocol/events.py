"""Stored events as ``ledger.v1.Event`` messages (history API and NATS stream)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from ledger.domain.audit import event_id_text
from ledger.domain.message import Message
from ledger.v1 import events_pb2

__all__ = ["STATUS_TO_PROTO", "event_to_proto", "stamp", "timestamp"]

STATUS_TO_PROTO = {
    "SUBMITTED": events_pb2.MESSAGE_STATUS_SUBMITTED,
    "ACCEPTED": events_pb2.MESSAGE_STATUS_ACCEPTED,
    "ENROUTE": events_pb2.MESSAGE_STATUS_ENROUTE,
    "DELIVERED": events_pb2.MESSAGE_STATUS_DELIVERED,
    "FAILED": events_pb2.MESSAGE_STATUS_FAILED,
    "REJECTED": events_pb2.MESSAGE_STATUS_REJECTED,
    "EXPIRED": events_pb2.MESSAGE_STATUS_EXPIRED,
    "UNKNOWN": events_pb2.MESSAGE_STATUS_UNKNOWN,
}

_EFFECTS = {
    "APPLIED": events_pb2.RECEIPT_EFFECT_APPLIED,
    "OUT_OF_ORDER": events_pb2.RECEIPT_EFFECT_OUT_OF_ORDER,
    "CONFLICT": events_pb2.RECEIPT_EFFECT_CONFLICT,
    "SUPERSEDED_INFERRED": events_pb2.RECEIPT_EFFECT_SUPERSEDED_INFERRED,
    "OVERRODE_FINAL": events_pb2.RECEIPT_EFFECT_OVERRODE_FINAL,
    "NO_CHANGE": events_pb2.RECEIPT_EFFECT_NO_CHANGE,
    "PRECEDED_FINAL": events_pb2.RECEIPT_EFFECT_PRECEDED_FINAL,
}


def timestamp(value: datetime | None) -> Timestamp | None:
    """Return a protobuf Timestamp of an aware datetime, None for None."""
    return None if value is None else stamp(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp(value: datetime) -> Timestamp:
    """Return a protobuf Timestamp of an aware datetime."""
    # Direct arithmetic: Timestamp.FromDatetime costs three times as much.
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def event_to_proto(event: Any, tenant: str, message_id: str) -> events_pb2.Event:
    """Convert a stored message event to ``ledger.v1.Event``.

    The result never holds raw payloads or the full destination: those are
    added by the audit API for callers allowed to see them.

    Args:
        event: A :class:`~ledger.domain.message.Message` event.
        tenant: Tenant of the message (stored in its first event only).
        message_id: The caller's id of the message.
    """
    proto = events_pb2.Event(
        event_id=event_id_text(event.originator_id, event.originator_version),
        type=type(event).__name__,
        tenant=tenant,
        message_id=message_id,
        aggregate_id=str(event.originator_id),
        version=event.originator_version,
        occurred_at=stamp(event.occurred_at),
        recorded_at=stamp(event.timestamp),
        hash=event.hash,
        attempt=event.attempt,
        status=STATUS_TO_PROTO[event.status_after],
        final=event.final_after,
        conflict=event.conflict_after,
    )
    if isinstance(event, Message.Submitted | Message.Resubmitted):
        submission = proto.submission
        if isinstance(event, Message.Submitted):
            submission.destination_masked = event.destination_masked
            submission.country = event.country
            submission.country_code = event.country_code
            submission.unallocated = event.unallocated
        submission.sender = event.sender
        submission.carrier = event.carrier
        submission.segment_count = event.segment_count
        submission.validity_period.CopyFrom(Duration(seconds=event.validity_seconds))
        submission.request_id = event.request_id or ""
    elif isinstance(event, Message.CarrierAccepted):
        proto.acceptance.carrier = event.carrier
        for item in event.segments:
            proto.acceptance.segments.add(
                segment=item["segment"],
                carrier_message_id=item["carrier_message_id"],
                canonical_id=item["canonical_id"],
            )
    elif isinstance(event, Message.RetryAdvised):
        proto.retry_advice.retry = event.retry
        proto.retry_advice.attempts_left = event.attempts_left
        proto.retry_advice.reason = event.reason
        if event.not_before is not None:
            proto.retry_advice.not_before.CopyFrom(stamp(event.not_before))
    elif isinstance(event, Message.ReceiptEvent):
        if event.inferred:
            proto.inferred_expiry.reason = event.inferred_reason or ""
            if event.inferred_deadline is not None:
                proto.inferred_expiry.deadline.CopyFrom(stamp(event.inferred_deadline))
        else:
            receipt = proto.receipt
            receipt.connection = event.connection
            receipt.carrier_message_id = event.carrier_message_id or ""
            receipt.segment = event.segment
            receipt.status = event.status
            receipt.final = event.final
            if event.permanent is not None:
                receipt.permanent = event.permanent
            receipt.error_code = event.error_code or ""
            receipt.error_table = event.error_table or ""
            receipt.received_at.CopyFrom(stamp(event.received_at))
            receipt.parked = event.parked
            receipt.effect = _EFFECTS[event.effect]
            receipt.has_raw = event.raw_ciphertext is not None
            receipt.raw_format = event.raw_format or ""
            receipt.raw_content_type = event.raw_content_type or ""
            receipt.redactions.extend(event.raw_redactions)
    return proto
