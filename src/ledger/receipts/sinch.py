"""Sinch SMS REST API delivery report callbacks (JSON POST).

Only per-recipient reports (``recipient_delivery_report_sms`` and
``recipient_delivery_report_mms``) describe one message. Batch summaries
(``delivery_report_sms``/``_mms``, with a ``statuses`` array of counts) do not,
and are rejected. ``batch_id`` is the carrier id; one message is the pair
``batch_id`` + ``recipient``. ``operator_status_at`` is the completion time;
``at`` is only when Sinch built the report; Sinch writes both in UTC.
``code`` 400 and 401 only restate Queued and Dispatched, so they are not kept
as error codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import build_receipt, lookup_status
from ledger.receipts.dates import read_iso_field
from ledger.receipts.model import CarrierProfile, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import json_text, load_json_object, redacted_json_body

__all__ = ["SINCH_STATUSES", "parse_sinch"]

FORMAT = "sinch"

SINCH_STATUSES: Mapping[str, ReceiptStatus] = {
    "QUEUED": ReceiptStatus.ENROUTE,
    "DISPATCHED": ReceiptStatus.ACCEPTED,
    "ABORTED": ReceiptStatus.FAILED,  # never reached an SMSC
    "CANCELLED": ReceiptStatus.FAILED,
    "REJECTED": ReceiptStatus.REJECTED,
    "DELETED": ReceiptStatus.FAILED,  # deleted by a remote SMSC
    "DELIVERED": ReceiptStatus.DELIVERED,
    "FAILED": ReceiptStatus.FAILED,
    "EXPIRED": ReceiptStatus.EXPIRED,
    "UNKNOWN": ReceiptStatus.UNKNOWN,
}

# Sinch marks Unknown as final: the SMSC took the message and no usable
# receipt will follow.
_FINAL_UNKNOWN = "UNKNOWN"
_CANCELLED = "CANCELLED"
_CANCELLED_CODE = "407"
_RESTATING_CODES = frozenset({"400", "401"})
_PER_RECIPIENT_TYPES = frozenset({"recipient_delivery_report_sms", "recipient_delivery_report_mms"})


def parse_sinch(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse a Sinch per-recipient delivery report.

    Args:
        body: The JSON body.
        content_type: Unused.
        profile: The connection's profile.
        metadata: Unused.

    Returns:
        One receipt, with any ``body`` member redacted.

    Raises:
        ReceiptParseError: The body is a batch summary, is not JSON, or has no
            ``status``.
    """
    document = load_json_object(body, FORMAT)
    report_type = json_text(document, "type")
    if report_type is not None and report_type not in _PER_RECIPIENT_TYPES:
        raise ReceiptParseError(
            FORMAT,
            "type",
            report_type,
            "only per-recipient delivery reports describe a message; "
            "request per_recipient reports for this batch",
        )
    if report_type is None and "statuses" in document:
        raise ReceiptParseError(
            FORMAT, "statuses", "", "batch summary report; request per_recipient reports"
        )
    word = (json_text(document, "status") or "").strip()
    if not word:
        raise ReceiptParseError(FORMAT, "status", "", "status is missing")

    status, warning = lookup_status(word, SINCH_STATUSES, profile)
    warnings = [] if warning is None else [warning]
    code = json_text(document, "code")
    if code is not None and code.strip() in _RESTATING_CODES:
        code = None
    operator_time = json_text(document, "operator_status_at")
    done_at = read_iso_field(operator_time, "operator_status_at", UTC, warnings)
    receipt = build_receipt(
        status,
        profile,
        carrier_message_id=json_text(document, "batch_id"),
        final=True if word.upper() == _FINAL_UNKNOWN else None,
        error_code=code,
        error_table="sinch",
        cancelled=word.upper() == _CANCELLED or (code or "").strip() == _CANCELLED_CODE,
        done_at=done_at,
        source_time=operator_time or json_text(document, "at"),
        recipient=json_text(document, "recipient"),
        warnings=tuple(warnings),
    )
    redacted, redactions = redacted_json_body(body, document, FORMAT)
    return ParsedReceipts((receipt,), redacted, redactions)
