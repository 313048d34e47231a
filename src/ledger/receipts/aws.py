"""AWS receipts: End User Messaging SMS events and SNS SMS delivery status logs.

Three JSON shapes are accepted, distinguished by their members:

* An End User Messaging (formerly Pinpoint SMS) event, with ``eventType``
  such as ``TEXT_DELIVERED``, ``messageStatus``, ``isFinal``, ``messageId``
  and ``eventTimestamp`` in epoch milliseconds. ``isFinal`` decides finality,
  so ``TEXT_SUCCESSFUL`` with ``isFinal`` true is an acceptance that is final.
  ``messageStatus`` is the error code for outcomes other than success.
* The same event wrapped in an SNS HTTP notification
  (``{"Type": "Notification", "Message": "<event JSON>", ...}``).
* An SNS delivery status log of the older Publish-to-phone path, with
  ``notification``, ``delivery`` and ``status`` (``SUCCESS``/``FAILURE``).
  SUCCESS only means the carrier accepted the message, so it normalizes to
  accepted and final. Its ``done_at`` is derived, not reported: the
  notification timestamp (UTC) plus ``delivery.dwellTimeMsUntilDeviceAck``,
  or plus ``dwellTimeMs`` when the device acknowledgement time is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import build_receipt, lookup_status
from ledger.receipts.dates import from_epoch_millis, read_iso_field
from ledger.receipts.model import CarrierProfile, NormalizedReceipt, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import (
    dump_json,
    json_object,
    json_text,
    load_json_object,
    redact_json,
)

__all__ = ["AWS_MESSAGE_STATUSES", "SNS_LOG_STATUSES", "parse_aws"]

FORMAT = "aws"

AWS_MESSAGE_STATUSES: Mapping[str, ReceiptStatus] = {
    "QUEUED": ReceiptStatus.ENROUTE,
    "PENDING": ReceiptStatus.ENROUTE,
    "SUCCESSFUL": ReceiptStatus.ACCEPTED,
    "DELIVERED": ReceiptStatus.DELIVERED,
    "BLOCKED": ReceiptStatus.FAILED,
    "TTL_EXPIRED": ReceiptStatus.EXPIRED,
    "CARRIER_UNREACHABLE": ReceiptStatus.FAILED,
    "INVALID": ReceiptStatus.FAILED,
    "INVALID_MESSAGE": ReceiptStatus.FAILED,
    "CARRIER_BLOCKED": ReceiptStatus.FAILED,
    "UNREACHABLE": ReceiptStatus.FAILED,
    "SPAM": ReceiptStatus.FAILED,
    "UNKNOWN": ReceiptStatus.UNKNOWN,
    "PROTECT_BLOCKED": ReceiptStatus.REJECTED,
}

# Outcomes that are not errors, so their messageStatus is no error code.
_SUCCESS_STATUSES = frozenset({"QUEUED", "PENDING", "SUCCESSFUL", "DELIVERED"})

SNS_LOG_STATUSES: Mapping[str, ReceiptStatus] = {
    "SUCCESS": ReceiptStatus.ACCEPTED,
    "FAILURE": ReceiptStatus.FAILED,
}

_EVENT_TYPE_PREFIX = "TEXT_"
# Bounds a dwell time to 30 days, far above any real one, so bad input cannot
# overflow the date arithmetic.
_MAX_DWELL_MILLIS = 30 * 24 * 3600 * 1000


def _event_receipt(event: Mapping[str, Any], profile: CarrierProfile) -> NormalizedReceipt:
    word = (json_text(event, "messageStatus") or "").strip().upper()
    if not word:
        event_type = (json_text(event, "eventType") or "").strip().upper()
        word = event_type.removeprefix(_EVENT_TYPE_PREFIX)
    if not word:
        raise ReceiptParseError(
            FORMAT, "messageStatus", "", "messageStatus and eventType are missing"
        )
    status, warning = lookup_status(word, AWS_MESSAGE_STATUSES, profile)
    warnings = [] if warning is None else [warning]
    is_final = event.get("isFinal")
    timestamp = event.get("eventTimestamp")
    done_at = None
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        done_at = from_epoch_millis(timestamp)
    return build_receipt(
        status,
        profile,
        carrier_message_id=json_text(event, "messageId"),
        final=is_final if isinstance(is_final, bool) else None,
        error_code=None if word in _SUCCESS_STATUSES else word,
        error_table="aws",
        done_at=done_at,
        source_time=json_text(event, "eventTimestamp"),
        recipient=json_text(event, "destinationPhoneNumber"),
        warnings=tuple(warnings),
    )


def _dwell_millis(delivery: Mapping[str, Any]) -> int | None:
    for key in ("dwellTimeMsUntilDeviceAck", "dwellTimeMs"):
        value = delivery.get(key)
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and 0 <= value <= _MAX_DWELL_MILLIS
        ):
            return value
    return None


def _sns_log_receipt(log: Mapping[str, Any], profile: CarrierProfile) -> NormalizedReceipt:
    notification = json_object(log, "notification") or {}
    delivery = json_object(log, "delivery") or {}
    word = (json_text(log, "status") or "").strip()
    status, warning = lookup_status(word, SNS_LOG_STATUSES, profile)
    warnings = [] if warning is None else [warning]
    timestamp = json_text(notification, "timestamp")
    sent_at = read_iso_field(timestamp, "notification.timestamp", UTC, warnings)
    done_at: datetime | None = None
    dwell = _dwell_millis(delivery)
    if sent_at is not None:
        try:
            done_at = sent_at + timedelta(milliseconds=dwell or 0)
        except OverflowError:
            warnings.append("notification.timestamp plus dwell time is out of range")
    return build_receipt(
        status,
        profile,
        carrier_message_id=json_text(notification, "messageId"),
        # Both log statuses end the message: SNS sends nothing after them.
        final=True if status is not ReceiptStatus.UNKNOWN else None,
        done_at=done_at,
        source_time=timestamp,
        recipient=json_text(delivery, "destination"),
        warnings=tuple(warnings),
    )


def _unwrap_sns(document: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return the event inside an SNS notification, and whether there was an envelope."""
    if "Type" not in document or "Message" not in document:
        return document, False
    kind = json_text(document, "Type")
    if kind != "Notification":
        raise ReceiptParseError(
            FORMAT, "Type", kind or "", "SNS message is not a Notification, so it holds no event"
        )
    message = json_text(document, "Message")
    if message is None:
        raise ReceiptParseError(FORMAT, "Message", "", "SNS Message must be a JSON string")
    inner = load_json_object(message, FORMAT)
    return inner, True


def parse_aws(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse an AWS SMS event or delivery status log.

    Args:
        body: The JSON body: an End User Messaging event, an SNS notification
            holding one, or an SNS delivery status log.
        content_type: Unused.
        profile: The connection's profile.
        metadata: Unused.

    Returns:
        One receipt. A message body member, if any, is redacted; inside an SNS
        envelope the redacted event is written back into ``Message``.

    Raises:
        ReceiptParseError: The body is not JSON, is an SNS message other than
            a notification, or is neither an event nor a status log.
    """
    document = load_json_object(body, FORMAT)
    event, wrapped = _unwrap_sns(document)
    if "eventType" in event or "messageStatus" in event:
        receipt = _event_receipt(event, profile)
    elif "notification" in event and "status" in event:
        receipt = _sns_log_receipt(event, profile)
    else:
        raise ReceiptParseError(
            FORMAT,
            "eventType",
            "",
            "neither an End User Messaging event nor an SNS delivery status log",
        )

    redactions = redact_json(event)
    if not redactions:
        return ParsedReceipts((receipt,), body)
    if wrapped:
        document["Message"] = dump_json(event, FORMAT).decode("utf-8")
        redactions = tuple(f"Message.{name}" for name in redactions)
    redacted = dump_json(document, FORMAT)
    return ParsedReceipts((receipt,), redacted, redactions)
