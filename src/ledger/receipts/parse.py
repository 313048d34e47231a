"""The single entry point of receipt parsing: dispatch by format name."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ledger.errors import ReceiptParseError
from ledger.receipts.aws import parse_aws
from ledger.receipts.infobip import parse_infobip
from ledger.receipts.jasmin import parse_jasmin
from ledger.receipts.kannel import parse_kannel
from ledger.receipts.messagebird import parse_messagebird
from ledger.receipts.model import CarrierProfile, ParsedReceipts
from ledger.receipts.plivo import parse_plivo
from ledger.receipts.sinch import parse_sinch
from ledger.receipts.smpp_pdu import parse_smpp_pdu
from ledger.receipts.smpp_text import parse_smpp_text
from ledger.receipts.twilio import parse_twilio
from ledger.receipts.vonage import parse_vonage

__all__ = ["FORMATS", "MAX_BODY_BYTES", "ReceiptParser", "parse_receipt"]

ReceiptParser = Callable[[bytes, str, CarrierProfile, Mapping[str, str]], ParsedReceipts]

_PARSERS: Mapping[str, ReceiptParser] = {
    "smpp-text": parse_smpp_text,
    "smpp-pdu": parse_smpp_pdu,
    "smpp-tlv": parse_smpp_pdu,
    "kannel": parse_kannel,
    "jasmin": parse_jasmin,
    "twilio": parse_twilio,
    "vonage": parse_vonage,
    "plivo": parse_plivo,
    "sinch": parse_sinch,
    "infobip": parse_infobip,
    "aws": parse_aws,
    "sns": parse_aws,
    "messagebird": parse_messagebird,
}

FORMATS: tuple[str, ...] = tuple(sorted(_PARSERS))

# The largest known payload, an Infobip POST of 100 reports, is well under
# 100 KiB; anything past 1 MiB is not a receipt.
MAX_BODY_BYTES = 1 << 20

_NO_METADATA: Mapping[str, str] = {}


def parse_receipt(
    format: str,
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str] | None = None,
) -> ParsedReceipts:
    """Parse and normalize one received receipt payload.

    Args:
        format: ``smpp-text``, ``smpp-pdu`` (alias ``smpp-tlv``), ``kannel``,
            ``jasmin``, ``twilio``, ``vonage``, ``plivo``, ``sinch``,
            ``infobip``, ``aws``, ``sns`` or ``messagebird``; case-insensitive.
        body: The exact bytes received. An ``smpp-pdu`` body may also be the
            PDU as hex text.
        content_type: The HTTP content type, where the format has several
            encodings (Vonage, Plivo and MessageBird accept form or JSON).
        profile: The connection's profile.
        metadata: Per-message facts that no payload carries, such as
            ``jasmin_requested_level`` or ``kannel.*_param`` names.

    Returns:
        The normalized receipts (several for batched webhooks) and the body
        with message text redacted.

    Raises:
        ReceiptParseError: The format is unknown, or the body is too large or
            cannot be read as a receipt of that format. No other exception
            escapes.
    """
    parser = _PARSERS.get(format.strip().lower())
    if parser is None:
        raise ReceiptParseError(
            format,
            "format",
            format,
            f"unknown receipt format; expected one of {', '.join(FORMATS)}",
        )
    if len(body) > MAX_BODY_BYTES:
        raise ReceiptParseError(
            format, "body", f"{len(body)} bytes", f"body is larger than {MAX_BODY_BYTES} bytes"
        )
    return parser(bytes(body), content_type or "", profile, metadata or _NO_METADATA)
