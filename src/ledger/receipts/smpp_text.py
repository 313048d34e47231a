"""SMPP delivery receipt text, the ``short_message`` layout of SMPP 3.4 Appendix B.

The typical layout is
``id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
stat:DDDDDDD err:E text:...``, but SMSCs vary it, so the parser:

* matches keys case-insensitively, in any order, with any of them missing,
  and ignores keys it does not know (``mccmnc:``, ``price:``);
* reads only up to the first ``text:`` that follows whitespace (or starts the
  receipt), because the echoed message text may itself contain ``stat:``;
* keeps values whole: an ``err`` of four characters stays four characters;
* reads dates of 10, 12 or 14 digits in the connection's zone.

The Kannel, Jasmin and binary PDU parsers reuse these functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import NamedTuple

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import build_receipt, lookup_status
from ledger.receipts.dates import parse_smpp_date, resolve_zone
from ledger.receipts.model import CarrierProfile, NormalizedReceipt, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import REDACTION_MARKER

__all__ = [
    "STAT_WORDS",
    "ReceiptText",
    "parse_receipt_text",
    "parse_smpp_text",
    "profile_zone",
    "read_done_date",
    "receipt_from_text",
    "redact_receipt_text",
]

FORMAT = "smpp-text"

# Stat words and the spellings SMSCs use besides the Appendix B ones.
# ACCEPTD is an intermediate acceptance by the next hop, not a delivery.
STAT_WORDS: Mapping[str, ReceiptStatus] = {
    "DELIVRD": ReceiptStatus.DELIVERED,
    "DELIVERED": ReceiptStatus.DELIVERED,
    "EXPIRED": ReceiptStatus.EXPIRED,
    "DELETED": ReceiptStatus.FAILED,
    "UNDELIV": ReceiptStatus.FAILED,
    "UNDELIVERABLE": ReceiptStatus.FAILED,
    "FAILED": ReceiptStatus.FAILED,
    "SKIPPED": ReceiptStatus.FAILED,
    "ACCEPTD": ReceiptStatus.ACCEPTED,
    "ACCEPTED": ReceiptStatus.ACCEPTED,
    "ACKED": ReceiptStatus.ACCEPTED,
    "ENROUTE": ReceiptStatus.ENROUTE,
    "SCHEDULED": ReceiptStatus.ENROUTE,
    "BUFFRED": ReceiptStatus.ENROUTE,
    "BUFFERD": ReceiptStatus.ENROUTE,
    "BUFFERED": ReceiptStatus.ENROUTE,
    "UNKNOWN": ReceiptStatus.UNKNOWN,
    "REJECTD": ReceiptStatus.REJECTED,
    "REJECTED": ReceiptStatus.REJECTED,
}

# `text:` at the start or after whitespace; a key such as `context:` does not count.
_TEXT_KEY = re.compile(rb"(?<!\S)text:", re.IGNORECASE)

# A known key at the start or after whitespace, then its value up to the next
# whitespace. Unknown keys never match and so are skipped. Blanks after the
# colon are allowed ("stat: DELIVRD") unless the next word is another key,
# in which case the value is empty.
_KEY = rb"(?:id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)"
_FIELD = re.compile(
    rb"(?<!\S)(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err)[ \t]*:"
    rb"(?:[ \t]+(?!" + _KEY + rb"[ \t]*:))?(\S*)",
    re.IGNORECASE,
)

_KEY_NAMES: Mapping[bytes, str] = {
    b"id": "id",
    b"sub": "sub",
    b"dlvrd": "dlvrd",
    b"submit date": "submit date",
    b"submit_date": "submit date",
    b"submitdate": "submit date",
    b"done date": "done date",
    b"done_date": "done date",
    b"donedate": "done date",
    b"stat": "stat",
    b"err": "err",
}

_TEXT_KEY_LENGTH = len(b"text:")
_REDACTED_TEXT = REDACTION_MARKER.encode("ascii")
_BLANK = b" \t\r\n\x00"


class ReceiptText(NamedTuple):
    """Fields read from a receipt text.

    Attributes:
        fields: Values by key (``id``, ``sub``, ``dlvrd``, ``submit date``,
            ``done date``, ``stat``, ``err``), first occurrence only.
        text_start: Byte offset of the ``text:`` key, or -1 without one.
    """

    fields: dict[str, str]
    text_start: int


def parse_receipt_text(raw: bytes) -> ReceiptText:
    """Read the fields of a receipt text.

    Missing keys are absent from the result, and no input makes it raise.

    Args:
        raw: The receipt text, such as a ``short_message``.
    """
    match = _TEXT_KEY.search(raw)
    text_start = match.start() if match is not None else -1
    head = raw if text_start < 0 else raw[:text_start]
    if b"\x00" in head:
        head = head.replace(b"\x00", b" ")
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(head):
        name = _KEY_NAMES.get(key) or _KEY_NAMES.get(key.lower())
        if name is not None and name not in fields:
            fields[name] = value.decode("utf-8", "replace")
    return ReceiptText(fields, text_start)


def redact_receipt_text(raw: bytes, text_start: int) -> bytes | None:
    """Replace the content after ``text:`` by the redaction marker.

    Returns:
        The redacted text, or None when there is no ``text:`` content to remove.
    """
    if text_start < 0:
        return None
    content_start = text_start + _TEXT_KEY_LENGTH
    if not raw[content_start:].strip(_BLANK):
        return None
    return raw[:content_start] + _REDACTED_TEXT


def profile_zone(profile: CarrierProfile, fmt: str) -> tzinfo:
    """Return the zone of the profile's dates.

    Raises:
        ReceiptParseError: The profile names an unknown zone, so no date of
            this connection can be read.
    """
    try:
        return resolve_zone(profile.timezone)
    except ValueError as exc:
        raise ReceiptParseError(fmt, "timezone", profile.timezone, str(exc)) from exc


def read_done_date(text: str | None, zone: tzinfo, warnings: list[str]) -> datetime | None:
    """Parse a ``done date`` value, adding a warning when it is present but invalid."""
    if text is None or not text or text.upper() == "ND":
        return None
    value = parse_smpp_date(text, zone)
    if value is None:
        if text.isascii() and text.isdigit() and len(text) in (10, 12, 14):
            reason = "not a calendar date and time"
        else:
            reason = "expected 10, 12 or 14 digits"
        warnings.append(f"invalid done date {text[:32]!r}; {reason}")
    return value


def receipt_from_text(
    fields: Mapping[str, str],
    profile: CarrierProfile,
    fmt: str,
) -> NormalizedReceipt:
    """Normalize the fields of a receipt text.

    Raises:
        ReceiptParseError: The text has no ``stat`` field.
    """
    stat = fields.get("stat")
    if not stat:
        raise ReceiptParseError(fmt, "stat", stat or "", "receipt text has no stat value")
    status, warning = lookup_status(stat, STAT_WORDS, profile)
    warnings: list[str] = [] if warning is None else [warning]
    done_text = fields.get("done date")
    done_at = read_done_date(done_text, profile_zone(profile, fmt), warnings)
    return build_receipt(
        status,
        profile,
        carrier_message_id=fields.get("id"),
        error_code=fields.get("err"),
        error_table=profile.error_table,
        done_at=done_at,
        source_time=done_text,
        warnings=tuple(warnings),
    )


def parse_smpp_text(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse a receipt text as carried in ``short_message``.

    Args:
        body: The receipt text bytes; leading and trailing NUL, CR and LF are
            ignored.
        content_type: Unused; the text has one form.
        profile: The connection's profile (zone, error table, synonyms).
        metadata: Unused.

    Returns:
        One receipt, and the body with the ``text:`` content replaced by
        ``[redacted]``.

    Raises:
        ReceiptParseError: The text has no ``stat`` value.
    """
    parsed = parse_receipt_text(body)
    receipt = receipt_from_text(parsed.fields, profile, FORMAT)
    redacted = redact_receipt_text(body, parsed.text_start)
    if redacted is None:
        return ParsedReceipts((receipt,), body)
    return ParsedReceipts((receipt,), redacted, ("text",))
