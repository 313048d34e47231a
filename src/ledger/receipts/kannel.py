"""Kannel delivery reports: the query string of a templated ``dlr-url``.

Kannel substitutes escape codes into the URL that the sender chose, so the
parameter names are the sender's. The parser looks for the common names below;
metadata keys ``kannel.type_param``, ``kannel.reply_param``,
``kannel.foreign_id_param``, ``kannel.recipient_param`` and
``kannel.err_param`` name others.

* ``%d``, the report type, is one bit of the dlr-mask: 1 delivered,
  2 not delivered, 4 buffered on the SMSC, 8 accepted by the SMSC, 16
  rejected by the SMSC, 32 intermediate notification.
* ``%A`` is the SMSC's reply. For a receipt it is the Appendix B text. Its
  ``stat`` distinguishes expired, rejected and undeliverable, which type 2
  lumps together, so a recognized ``stat`` wins over the type. For a
  submit result it is ``ACK/...`` or ``NACK/<command_status>/<description>``.
* ``%F`` is the SMSC's message id; the text ``id:`` is used when it is empty.

Kannel itself turns stat words it does not know into type 2 failures; here
such a word gives ``unknown`` with a warning instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import build_receipt, lookup_status
from ledger.receipts.model import CarrierProfile, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import decode_form, redact_form
from ledger.receipts.smpp_text import (
    STAT_WORDS,
    parse_receipt_text,
    profile_zone,
    read_done_date,
    redact_receipt_text,
)

__all__ = ["DLR_TYPES", "parse_kannel"]

FORMAT = "kannel"

# Report types (Kannel gw/dlr.h) and what each means for the message.
DLR_TYPES: Mapping[int, ReceiptStatus] = {
    1: ReceiptStatus.DELIVERED,
    2: ReceiptStatus.FAILED,
    4: ReceiptStatus.ENROUTE,
    8: ReceiptStatus.ACCEPTED,
    16: ReceiptStatus.REJECTED,
    32: ReceiptStatus.ENROUTE,
}
_DLR_FAIL = 2

_TYPE_PARAMS = (
    "dlr",
    "type",
    "dlr_type",
    "dlr-type",
    "dlrtype",
    "dlr_status",
    "dlr-status",
    "status",
)
_REPLY_PARAMS = ("reply", "answer", "smsc_reply", "smsc-reply", "smscreply", "dlr_reply")
_FOREIGN_ID_PARAMS = ("fid", "foreign_id", "foreign-id", "foreignid", "smsc_id_msg", "msgid")
_RECIPIENT_PARAMS = ("to", "receiver", "destination", "dest", "msisdn", "phone")
_ERR_PARAMS = ("err", "error", "error_code")
_TIME_PARAMS = ("ts", "time", "timestamp")

# command_status in a NACK reply: 0x-prefixed hex or decimal digits.
_NACK_CODE = re.compile(r"0[xX][0-9a-fA-F]{1,8}|\d{1,10}")


def _names(metadata: Mapping[str, str], key: str, defaults: tuple[str, ...]) -> tuple[str, ...]:
    custom = metadata.get(key)
    return (custom, *defaults) if custom else defaults


def _redact_reply(value: str) -> str | None:
    raw = value.encode("utf-8")
    redacted = redact_receipt_text(raw, parse_receipt_text(raw).text_start)
    return None if redacted is None else redacted.decode("utf-8", "replace")


def parse_kannel(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse a Kannel dlr-url callback.

    Args:
        body: The query string (or form body) that Kannel sent.
        content_type: Unused; GET query strings and POST forms read alike.
        profile: The connection's profile.
        metadata: Optional ``kannel.*_param`` names of custom parameters.

    Returns:
        One receipt, with the ``text:`` part of the reply redacted.

    Raises:
        ReceiptParseError: Neither a known report type nor a receipt ``stat``
            is present.
    """
    fields = decode_form(body, FORMAT)
    type_names = _names(metadata, "kannel.type_param", _TYPE_PARAMS)
    reply_names = _names(metadata, "kannel.reply_param", _REPLY_PARAMS)
    type_text = (fields.get(*type_names) or "").strip()
    dlr_type = (
        int(type_text)
        if type_text.isascii() and type_text.isdigit() and len(type_text) <= 3
        else None
    )
    reply = (fields.get(*reply_names) or "").strip()
    warnings: list[str] = []
    error_code = fields.get(*_names(metadata, "kannel.err_param", _ERR_PARAMS))
    error_table: str | None = profile.error_table
    receipt_fields: dict[str, str] = {}

    upper_reply = reply.upper()
    if upper_reply.startswith("NACK/"):
        match = _NACK_CODE.match(reply[5:].strip())
        error_code = match.group(0) if match is not None else None
        error_table = "smpp-command-status"
    elif not upper_reply.startswith("ACK/"):
        receipt_fields = parse_receipt_text(reply.encode("utf-8")).fields

    stat = receipt_fields.get("stat")
    type_status = DLR_TYPES.get(dlr_type) if dlr_type is not None else None
    if stat:
        status, warning = lookup_status(stat, STAT_WORDS, profile)
        if warning is not None:
            warnings.append(warning)
            if type_status is not None and dlr_type != _DLR_FAIL:
                # Kannel reports types other than 2 only for stat words it recognizes.
                status = type_status
    elif type_status is not None:
        status = type_status
        if dlr_type == _DLR_FAIL:
            warnings.append(
                "report type 2 without a receipt text: expired, rejected and "
                "undeliverable cannot be told apart"
            )
    else:
        raise ReceiptParseError(
            FORMAT,
            "type",
            type_text,
            "no report type of 1, 2, 4, 8, 16 or 32 and no receipt stat in the reply",
        )

    if receipt_fields.get("err") is not None:
        error_code = receipt_fields["err"]
    carrier_id = fields.get(*_names(metadata, "kannel.foreign_id_param", _FOREIGN_ID_PARAMS))
    if not (carrier_id or "").strip():
        carrier_id = receipt_fields.get("id")

    done_text = receipt_fields.get("done date")
    done_at = read_done_date(done_text, profile_zone(profile, FORMAT), warnings)
    receipt = build_receipt(
        status,
        profile,
        carrier_message_id=carrier_id,
        error_code=error_code,
        error_table=error_table,
        done_at=done_at,
        source_time=done_text or fields.get(*_TIME_PARAMS),
        recipient=fields.get(*_names(metadata, "kannel.recipient_param", _RECIPIENT_PARAMS)),
        warnings=tuple(warnings),
    )

    redacted, names = redact_form(body, dict.fromkeys(reply_names, _redact_reply))
    folded_reply_names = {name.casefold() for name in reply_names}
    redactions = tuple(
        f"{name}.text" if name.casefold() in folded_reply_names else name for name in names
    )
    return ParsedReceipts((receipt,), redacted, redactions)
