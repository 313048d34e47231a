"""MessageBird status reports (legacy GET) and Bird Channels message statuses (JSON).

Legacy reports are query strings with ``id``, ``recipient``, ``status``,
``statusReason``, ``statusErrorCode`` and ``statusDatetime`` (RFC 3339).

A Bird Channels webhook (event ``sms.outbound``) is read as the message
object under ``payload`` in ``{"service": "channels", "event": ..., "payload":
{...}}``, and a bare message object the same way. The message's ``id`` is the
carrier id, ``status`` one of accepted, sent, sending_failed, delivered or
delivery_failed, ``lastStatusAt`` the time of that status (RFC 3339), and
``receiver.contacts[0].identifierValue`` the recipient. Failures carry
``failure: {code, source: {code}}``. The source code is Bird's extended error
code. It reuses the GSM MAP numbering, so the ``bird`` table classifies it.

NOTE: Bird documents the message object and the subscription's ``service``
and ``event``, but the envelope around the message in a webhook body is
assumed, not confirmed.

NOTE: the legacy field list and status words were not checked against current
MessageBird documentation; unknown words become ``unknown`` with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import build_receipt, lookup_status
from ledger.receipts.dates import read_iso_field
from ledger.receipts.model import CarrierProfile, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import (
    decode_form,
    is_json_body,
    json_object,
    json_text,
    load_json_object,
    redact_form,
    redacted_json_body,
)

__all__ = ["MESSAGEBIRD_STATUSES", "parse_messagebird"]

FORMAT = "messagebird"

MESSAGEBIRD_STATUSES: Mapping[str, ReceiptStatus] = {
    "SCHEDULED": ReceiptStatus.ENROUTE,
    "BUFFERED": ReceiptStatus.ENROUTE,
    "ACCEPTED": ReceiptStatus.ENROUTE,  # Bird Channels: taken, not yet sent on
    "SENT": ReceiptStatus.ACCEPTED,
    "DELIVERED": ReceiptStatus.DELIVERED,
    "EXPIRED": ReceiptStatus.EXPIRED,
    "DELIVERY_FAILED": ReceiptStatus.FAILED,
    "SENDING_FAILED": ReceiptStatus.FAILED,  # Bird Channels: never reached the SMS platform
}

_FIELDS = ("id", "recipient", "status", "statusErrorCode", "statusDatetime")


def parse_messagebird(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse a MessageBird status report or a Bird message status.

    Args:
        body: A query string or form body, a Bird Channels webhook, or a
            message object.
        content_type: Selects JSON when it names JSON.
        profile: The connection's profile.
        metadata: Unused.

    Returns:
        One receipt, with any body or text field redacted.

    Raises:
        ReceiptParseError: The body cannot be decoded or has no ``status``.
    """
    values: dict[str, str | None]
    error_table = "bird"
    time_field = "statusDatetime"
    if is_json_body(body, content_type):
        document = load_json_object(body, FORMAT)
        message = _channels_message(document)
        values = {name: json_text(message, name) for name in _FIELDS}
        if values["statusDatetime"] is None:
            time_field = "lastStatusAt"
            values["statusDatetime"] = json_text(message, time_field)
        if values["recipient"] is None:
            values["recipient"] = _channels_recipient(message)
        failure = json_object(message, "failure")
        if failure is not None and values["statusErrorCode"] is None:
            source = json_object(failure, "source") or {}
            values["statusErrorCode"] = json_text(source, "code")
            if values["statusErrorCode"] is None:
                values["statusErrorCode"] = json_text(failure, "code")
                error_table = "unknown"
        redacted, redactions = redacted_json_body(body, document, FORMAT)
    else:
        form = decode_form(body, FORMAT)
        values = {name: form.get(name) for name in _FIELDS}
        redacted, redactions = redact_form(body)

    word = (values["status"] or "").strip()
    if not word:
        raise ReceiptParseError(FORMAT, "status", "", "status is missing")
    status, warning = lookup_status(word, MESSAGEBIRD_STATUSES, profile)
    warnings = [] if warning is None else [warning]
    status_time = values["statusDatetime"]
    done_at = read_iso_field(status_time, time_field, UTC, warnings)
    receipt = build_receipt(
        status,
        profile,
        carrier_message_id=values["id"],
        error_code=values["statusErrorCode"],
        error_table=error_table,
        done_at=done_at,
        source_time=status_time,
        recipient=values["recipient"],
        warnings=tuple(warnings),
    )
    return ParsedReceipts((receipt,), redacted, redactions)


def _channels_message(document: dict[str, Any]) -> dict[str, Any]:
    """Return the message object of a Bird Channels webhook, or the document itself."""
    payload = json_object(document, "payload")
    if payload is not None and "event" in document:
        return payload
    return document


def _channels_recipient(message: dict[str, Any]) -> str | None:
    """Return the first receiver contact's identifier value, if any."""
    receiver = json_object(message, "receiver") or {}
    contacts = receiver.get("contacts")
    if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict):
        return json_text(contacts[0], "identifierValue")
    return None
