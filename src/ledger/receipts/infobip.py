"""Infobip SMS delivery reports (JSON POST of ``{"results": [...]}``).

One POST carries up to 100 reports (by default), and each becomes its own
receipt. The status is keyed on ``status.id`` and then ``status.name``, never
on ``status.groupName``: the DELIVERED group also contains
DELIVERED_TO_OPERATOR, which is only an acceptance. ``error.id`` is the error
code, and ``error.permanent``, Infobip's own flag, decides permanence for
failures and rejections; it is ignored for every other status. ``doneAt``
carries an offset such as ``+0000``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import (
    UNRECOGNIZED_STATUS,
    build_receipt,
    lookup_status,
)
from ledger.receipts.dates import read_iso_field
from ledger.receipts.model import CarrierProfile, NormalizedReceipt, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import json_object, json_text, load_json_object, redacted_json_body

__all__ = ["INFOBIP_STATUS_IDS", "parse_infobip"]

FORMAT = "infobip"

_PENDING = ReceiptStatus.ENROUTE
_REJECTED = ReceiptStatus.REJECTED

# REJECTED_* statuses: 6, 8, 10-14, 17-21, 23-25, 51, 52, 87 and 100.
_REJECTED_IDS = (6, 8, *range(10, 15), *range(17, 22), *range(23, 26), 51, 52, 87, 100)

INFOBIP_STATUS_IDS: Mapping[str, ReceiptStatus] = {
    **{str(status_id): _REJECTED for status_id in _REJECTED_IDS},
    "3": _PENDING,  # PENDING_WAITING_DELIVERY
    "7": _PENDING,  # PENDING_ENROUTE
    "26": _PENDING,  # PENDING_ACCEPTED
    "2": ReceiptStatus.ACCEPTED,  # DELIVERED_TO_OPERATOR
    "5": ReceiptStatus.DELIVERED,  # DELIVERED_TO_HANDSET
    "4": _REJECTED,  # UNDELIVERABLE_REJECTED_OPERATOR
    "9": ReceiptStatus.FAILED,  # UNDELIVERABLE_NOT_DELIVERED
    "31": ReceiptStatus.FAILED,  # UNDELIVERABLE_NOT_SENT
    "15": ReceiptStatus.EXPIRED,  # EXPIRED_EXPIRED
    "29": ReceiptStatus.UNKNOWN,  # EXPIRED_DLR_UNKNOWN: may have been delivered
}

# Status names by prefix, for ids this table does not know. The first match wins.
_NAME_PREFIXES: tuple[tuple[str, ReceiptStatus], ...] = (
    ("PENDING_", _PENDING),
    ("DELIVERED_TO_OPERATOR", ReceiptStatus.ACCEPTED),
    ("DELIVERED_TO_HANDSET", ReceiptStatus.DELIVERED),
    ("UNDELIVERABLE_REJECTED", _REJECTED),
    ("UNDELIVERABLE_", ReceiptStatus.FAILED),
    ("EXPIRED_DLR_UNKNOWN", ReceiptStatus.UNKNOWN),
    ("EXPIRED_", ReceiptStatus.EXPIRED),
    ("REJECTED_", _REJECTED),
)

# EXPIRED_DLR_UNKNOWN ends the report stream even though the outcome is unknown.
_FINAL_UNKNOWN_ID = "29"
_FINAL_UNKNOWN_NAME = "EXPIRED_DLR_UNKNOWN"


def _status(
    status_object: Mapping[str, Any], profile: CarrierProfile
) -> tuple[ReceiptStatus, bool | None, str | None]:
    """Return the status, its finality where Infobip overrides the default, and a warning."""
    status_id = (json_text(status_object, "id") or "").strip()
    name = (json_text(status_object, "name") or "").strip().upper()
    final_unknown = status_id == _FINAL_UNKNOWN_ID or name == _FINAL_UNKNOWN_NAME
    final = True if final_unknown else None
    if profile.status_synonyms and name:
        status, warning = lookup_status(name, {}, profile)
        if warning is None:
            return status, None, None
    known = INFOBIP_STATUS_IDS.get(status_id)
    if known is not None:
        return known, final, None
    for prefix, status in _NAME_PREFIXES:
        if name.startswith(prefix):
            return status, final, None
    label = name or status_id
    return ReceiptStatus.UNKNOWN, None, f"{UNRECOGNIZED_STATUS} status {label[:64]!r}"


def _report(item: Any, index: int, profile: CarrierProfile) -> NormalizedReceipt:
    if not isinstance(item, dict):
        raise ReceiptParseError(FORMAT, f"results[{index}]", type(item).__name__, "not an object")
    status_object = json_object(item, "status")
    if status_object is None:
        raise ReceiptParseError(FORMAT, f"results[{index}].status", "", "status object is missing")
    status, final, warning = _status(status_object, profile)
    warnings = [] if warning is None else [warning]
    error = json_object(item, "error") or {}
    flag = error.get("permanent")
    done_text = json_text(item, "doneAt")
    done_at = read_iso_field(done_text, f"results[{index}].doneAt", UTC, warnings)
    return build_receipt(
        status,
        profile,
        carrier_message_id=json_text(item, "messageId"),
        final=final,
        error_code=json_text(error, "id"),
        error_table="infobip",
        source_flag=flag if isinstance(flag, bool) else None,
        done_at=done_at,
        source_time=done_text,
        recipient=json_text(item, "to"),
        warnings=tuple(warnings),
    )


def parse_infobip(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse an Infobip delivery report POST.

    Args:
        body: The JSON body: ``{"results": [...]}``, or one report object.
        content_type: Unused.
        profile: The connection's profile.
        metadata: Unused.

    Returns:
        One receipt per report, in the order of ``results``.

    Raises:
        ReceiptParseError: The body is not JSON, ``results`` is missing or
            empty, or a report has no status object.
    """
    document = load_json_object(body, FORMAT)
    results = document.get("results")
    if results is None and "status" in document:
        results = [document]
    if not isinstance(results, list) or not results:
        raise ReceiptParseError(
            FORMAT, "results", type(results).__name__, "results must be a non-empty array"
        )
    receipts = tuple(_report(item, index, profile) for index, item in enumerate(results))
    redacted, redactions = redacted_json_body(body, document, FORMAT)
    parts: tuple[bytes, ...] = ()
    if len(receipts) > 1:
        redacted_results = json.loads(redacted).get("results", results)
        parts = tuple(
            json.dumps({"results": [item]}, separators=(",", ":")).encode()
            for item in redacted_results
        )
    return ParsedReceipts(receipts, redacted, redactions, parts)
