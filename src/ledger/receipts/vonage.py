"""Vonage (Nexmo) SMS API delivery receipts: GET query, POST form or POST JSON.

All three transports use the same field names. ``msisdn`` is the recipient
(Vonage inverts the naming), ``messageId`` the carrier id, ``err-code`` the
error classified with Vonage's table, and ``scts`` the carrier's done time as
YYMMDDHHMM without a zone, read in the profile's zone. Vonage sends one
receipt per part of a concatenated message; the receipt does not say which
part.

Vonage's newer Messages API posts JSON status webhooks of another shape:
``message_uuid`` is the carrier id, ``status`` one of submitted, delivered,
read, rejected or undeliverable, ``timestamp`` an ISO 8601 time with zone, and
failures carry ``error.title`` (a numeric code as text). Such a body is
recognized by its ``message_uuid`` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC

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
from ledger.receipts.smpp_text import profile_zone, read_done_date

__all__ = ["MESSAGES_STATUSES", "VONAGE_STATUSES", "parse_vonage"]

FORMAT = "vonage"

VONAGE_STATUSES: Mapping[str, ReceiptStatus] = {
    "DELIVERED": ReceiptStatus.DELIVERED,
    "EXPIRED": ReceiptStatus.EXPIRED,
    "FAILED": ReceiptStatus.FAILED,
    "REJECTED": ReceiptStatus.REJECTED,
    "ACCEPTED": ReceiptStatus.ACCEPTED,
    "BUFFERED": ReceiptStatus.ENROUTE,
    "UNKNOWN": ReceiptStatus.UNKNOWN,
}

_FIELDS = ("status", "messageId", "err-code", "scts", "msisdn")

MESSAGES_STATUSES: Mapping[str, ReceiptStatus] = {
    "SUBMITTED": ReceiptStatus.ACCEPTED,
    "DELIVERED": ReceiptStatus.DELIVERED,
    "READ": ReceiptStatus.DELIVERED,
    "REJECTED": ReceiptStatus.REJECTED,
    "UNDELIVERABLE": ReceiptStatus.FAILED,
}


def parse_vonage(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse a Vonage SMS API delivery receipt.

    Args:
        body: A query string, form body or JSON object.
        content_type: Selects JSON when it names JSON; a body starting with
            ``{`` is read as JSON too.
        profile: The connection's profile; its zone reads ``scts``.
        metadata: Unused.

    Returns:
        One receipt, with any ``text`` field redacted.

    Raises:
        ReceiptParseError: The body cannot be decoded or has no ``status``.
    """
    values: dict[str, str | None]
    if is_json_body(body, content_type):
        document = load_json_object(body, FORMAT)
        if "message_uuid" in document:
            return _messages_api(body, document, profile)
        values = {name: json_text(document, name) for name in _FIELDS}
        redacted, redactions = redacted_json_body(body, document, FORMAT)
    else:
        form = decode_form(body, FORMAT)
        values = {name: form.get(name) for name in _FIELDS}
        redacted, redactions = redact_form(body)

    word = (values["status"] or "").strip()
    if not word:
        raise ReceiptParseError(FORMAT, "status", "", "status is missing")
    status, warning = lookup_status(word, VONAGE_STATUSES, profile)
    warnings = [] if warning is None else [warning]
    done_text = values["scts"]
    done_at = read_done_date(done_text, profile_zone(profile, FORMAT), warnings)
    receipt = build_receipt(
        status,
        profile,
        carrier_message_id=values["messageId"],
        error_code=values["err-code"],
        error_table="vonage",
        done_at=done_at,
        source_time=done_text,
        recipient=values["msisdn"],
        warnings=tuple(warnings),
    )
    return ParsedReceipts((receipt,), redacted, redactions)


def _messages_api(
    body: bytes, document: Mapping[str, object], profile: CarrierProfile
) -> ParsedReceipts:
    """Parse a Messages API status webhook (JSON with ``message_uuid``)."""
    word = (json_text(document, "status") or "").strip()
    if not word:
        raise ReceiptParseError(FORMAT, "status", "", "status is missing")
    status, warning = lookup_status(word, MESSAGES_STATUSES, profile)
    warnings = [] if warning is None else [warning]
    stamp = json_text(document, "timestamp")
    done_at = read_iso_field(stamp, "timestamp", UTC, warnings)
    error = document.get("error")
    code = json_text(error, "title") if isinstance(error, dict) else None
    receipt = build_receipt(
        status,
        profile,
        carrier_message_id=json_text(document, "message_uuid"),
        error_code=code,
        error_table="vonage-messages",
        done_at=done_at,
        source_time=stamp,
        recipient=json_text(document, "to"),
        warnings=tuple(warnings),
    )
    redacted, redactions = redacted_json_body(body, document, FORMAT)
    return ParsedReceipts((receipt,), redacted, redactions)
