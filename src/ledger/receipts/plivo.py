"""Plivo message status callbacks (form POST or GET query string).

``MessageUUID`` is the carrier id, ``Status`` the status and ``ErrorCode``
the error, classified with Plivo's table. ``DeliveryReportTime`` (format
``YYYY-mm-dd HH:MM:SS.ffffff``, zone not stated) is the completion time and is
read in the profile's zone. A message that failed before reaching a carrier
has none. ``Sequence`` orders Plivo's callbacks and is kept as the source
time when no report time is given.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import build_receipt, lookup_status
from ledger.receipts.dates import read_iso_field
from ledger.receipts.model import CarrierProfile, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import (
    decode_form,
    is_json_body,
    json_text,
    load_json_object,
    redact_form,
    redacted_json_body,
)
from ledger.receipts.smpp_text import profile_zone

__all__ = ["PLIVO_STATUSES", "parse_plivo"]

FORMAT = "plivo"

PLIVO_STATUSES: Mapping[str, ReceiptStatus] = {
    "QUEUED": ReceiptStatus.ENROUTE,
    "SENT": ReceiptStatus.ACCEPTED,
    "DELIVERED": ReceiptStatus.DELIVERED,
    "READ": ReceiptStatus.DELIVERED,  # WhatsApp read receipt
    "UNDELIVERED": ReceiptStatus.FAILED,
    "FAILED": ReceiptStatus.FAILED,
    "REJECTED": ReceiptStatus.REJECTED,
}

_FIELDS = ("Status", "MessageUUID", "ErrorCode", "DeliveryReportTime", "To", "Sequence")


def parse_plivo(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse a Plivo message status callback.

    Args:
        body: The form body or query string (a JSON object is accepted too).
        content_type: Selects JSON when it names JSON.
        profile: The connection's profile; its zone reads the report time.
        metadata: Unused.

    Returns:
        One receipt, with any ``Text`` field redacted.

    Raises:
        ReceiptParseError: The body cannot be decoded or has no ``Status``.
    """
    values: dict[str, str | None]
    if is_json_body(body, content_type):
        document = load_json_object(body, FORMAT)
        values = {name: json_text(document, name) for name in _FIELDS}
        redacted, redactions = redacted_json_body(body, document, FORMAT)
    else:
        form = decode_form(body, FORMAT)
        values = {name: form.get(name) for name in _FIELDS}
        redacted, redactions = redact_form(body)

    word = (values["Status"] or "").strip()
    if not word:
        raise ReceiptParseError(FORMAT, "Status", "", "Status is missing")
    status, warning = lookup_status(word, PLIVO_STATUSES, profile)
    warnings = [] if warning is None else [warning]
    report_time = values["DeliveryReportTime"]
    done_at = read_iso_field(
        report_time, "DeliveryReportTime", profile_zone(profile, FORMAT), warnings
    )
    sequence = values["Sequence"]
    receipt = build_receipt(
        status,
        profile,
        carrier_message_id=values["MessageUUID"],
        error_code=values["ErrorCode"],
        error_table="plivo",
        done_at=done_at,
        source_time=report_time or (f"Sequence={sequence}" if sequence else None),
        recipient=values["To"],
        warnings=tuple(warnings),
    )
    return ParsedReceipts((receipt,), redacted, redactions)
