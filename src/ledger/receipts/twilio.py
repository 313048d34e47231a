"""Twilio Programmable Messaging status callbacks (form POST or JSON POST).

``MessageSid`` (or ``SmsSid``) is the carrier id and ``MessageStatus`` (or
``SmsStatus``) the status. ``ErrorCode`` is classified with Twilio's own
table. ``RawDlrDoneDate`` is the carrier's done date passed through as
YYMMDDhhmm without a zone. Twilio documents that its offset varies between
carriers, so it is read in the profile's zone and is only as good as that
setting.
Parameters Twilio adds later are ignored.

A callback whose body is a JSON object (the kind Twilio signs with
``bodySHA256`` in the URL) is read with the same member names. String and
integer members count. Members of any other type are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import build_receipt, lookup_status
from ledger.receipts.model import CarrierProfile, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import (
    FormFields,
    decode_form,
    is_json_body,
    json_text,
    load_json_object,
    redact_form,
    redacted_json_body,
)
from ledger.receipts.smpp_text import profile_zone, read_done_date

__all__ = ["TWILIO_STATUSES", "parse_twilio"]

FORMAT = "twilio"

TWILIO_STATUSES: Mapping[str, ReceiptStatus] = {
    "ACCEPTED": ReceiptStatus.ENROUTE,  # taken by a Messaging Service
    "SCHEDULED": ReceiptStatus.ENROUTE,
    "QUEUED": ReceiptStatus.ENROUTE,
    "SENDING": ReceiptStatus.ENROUTE,
    "SENT": ReceiptStatus.ACCEPTED,  # the carrier took it; no handset outcome yet
    "DELIVERED": ReceiptStatus.DELIVERED,
    "READ": ReceiptStatus.DELIVERED,  # read receipt, a refinement of delivered
    "UNDELIVERED": ReceiptStatus.FAILED,
    "FAILED": ReceiptStatus.FAILED,
    "CANCELED": ReceiptStatus.FAILED,
    # NOTE: Twilio does not document what partially_delivered means for the
    # message, so it stays unknown and non-final.
    "PARTIALLY_DELIVERED": ReceiptStatus.UNKNOWN,
}

_INBOUND_STATUSES = frozenset({"RECEIVING", "RECEIVED"})
_CANCELED = "CANCELED"


def parse_twilio(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse a Twilio message status callback.

    Args:
        body: The form body, or a JSON object with the same member names.
        content_type: Selects JSON when it names JSON; a body starting with
            ``{`` is read as JSON too.
        profile: The connection's profile; its zone reads ``RawDlrDoneDate``.
        metadata: Unused.

    Returns:
        One receipt, with ``Body`` redacted if present.

    Raises:
        ReceiptParseError: The body cannot be decoded, or the status is
            missing or belongs to an inbound message.
    """
    document = None
    if is_json_body(body, content_type):
        document = load_json_object(body, FORMAT)
        fields = FormFields(
            (name, value) for name in document if (value := json_text(document, name)) is not None
        )
    else:
        fields = decode_form(body, FORMAT)
    word = (fields.get("MessageStatus", "SmsStatus") or "").strip()
    if not word:
        raise ReceiptParseError(FORMAT, "MessageStatus", "", "MessageStatus is missing")
    if word.upper() in _INBOUND_STATUSES:
        raise ReceiptParseError(
            FORMAT, "MessageStatus", word, "status of an inbound message, not a delivery report"
        )
    status, warning = lookup_status(word, TWILIO_STATUSES, profile)
    warnings = [] if warning is None else [warning]
    done_text = fields.get("RawDlrDoneDate")
    done_at = read_done_date(done_text, profile_zone(profile, FORMAT), warnings)
    receipt = build_receipt(
        status,
        profile,
        carrier_message_id=fields.get("MessageSid", "SmsSid"),
        error_code=fields.get("ErrorCode"),
        error_table="twilio",
        # A canceled scheduled message was never sent, so it is not a delivery failure.
        cancelled=word.upper() == _CANCELED,
        done_at=done_at,
        source_time=done_text,
        recipient=fields.get("To"),
        warnings=tuple(warnings),
    )
    if document is None:
        redacted, redactions = redact_form(body)
    else:
        redacted, redactions = redacted_json_body(body, document, FORMAT)
    return ParsedReceipts((receipt,), redacted, redactions)
