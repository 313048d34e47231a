"""MessageBird status reports (legacy GET) and Bird Channels message statuses (JSON).

Legacy reports are query strings with ``id``, ``recipient``, ``status``,
``statusReason``, ``statusErrorCode`` and ``statusDatetime`` (RFC 3339).
Bird Channels failures carry ``failure: {code, source: {code}}``. The
source code is Bird's extended error code. It reuses the GSM MAP numbering,
so the ``bird`` table classifies it.

NOTE: the legacy field list and status words were not checked against current
MessageBird documentation; unknown words become ``unknown`` with a warning.
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
    "SENT": ReceiptStatus.ACCEPTED,
    "DELIVERED": ReceiptStatus.DELIVERED,
    "EXPIRED": ReceiptStatus.EXPIRED,
    "DELIVERY_FAILED": ReceiptStatus.FAILED,
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
        body: A query string or form body, or a JSON object.
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
    if is_json_body(body, content_type):
        document = load_json_object(body, FORMAT)
        values = {name: json_text(document, name) for name in _FIELDS}
        failure = json_object(document, "failure")
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
    done_at = read_iso_field(status_time, "statusDatetime", UTC, warnings)
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
