"""Binary SMPP receipts: a whole ``deliver_sm`` or ``data_sm`` PDU, header included.

A PDU is a receipt when ``esm_class & 0x3C`` is 0x04 (SMSC delivery receipt)
or 0x20 (intermediate notification). The GSM bits 0x40 and 0x80 may be set
too. Values come from the optional parameters first and from the receipt text
for whatever they lack:

* ``receipted_message_id`` (0x001E) wins over the text ``id:``;
* ``message_state`` (0x0427) wins over ``stat:``;
* ``network_error_code`` (0x0423) wins over ``err:``. Its first octet is the
  network type (3 GSM MAP cause, 7 SMPP command_status, 8 message-centre
  specific) and the next two the code, big-endian. Some SMSCs send three
  ASCII digits instead, which are kept as text and classified like ``err``.

The receipt text is ``short_message``, or ``message_payload`` (0x0424) when
``short_message`` is empty. The done date can only come from the text.

NOTE: the text is read as ASCII-compatible bytes regardless of
``data_coding``, so a UCS-2 receipt text yields no fields and needs the TLVs.

The body may be the PDU bytes or the PDU as hex text. A binary PDU starts
with its own length, and a hex text would have to start with a length of at
least 0x30303030 octets to pass as binary, so the two cannot be confused.
Redaction rebuilds the PDU with the text part replaced and the length fields
adjusted, and returns it in the form it arrived in.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import NamedTuple

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import (
    UNRECOGNIZED_STATUS,
    build_receipt,
    lookup_status,
)
from ledger.receipts.model import CarrierProfile, ParsedReceipts, ReceiptStatus
from ledger.receipts.payloads import REDACTION_MARKER
from ledger.receipts.smpp_text import (
    STAT_WORDS,
    ReceiptText,
    parse_receipt_text,
    profile_zone,
    read_done_date,
    redact_receipt_text,
)

__all__ = ["MESSAGE_STATES", "parse_smpp_pdu"]

FORMAT = "smpp-pdu"

DELIVER_SM = 0x00000005
DATA_SM = 0x00000103

TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427
TAG_NETWORK_ERROR_CODE = 0x0423
TAG_MESSAGE_PAYLOAD = 0x0424
TAG_SAR_SEGMENT_SEQNUM = 0x020F

_RECEIPT_TYPES = frozenset({0x04, 0x20})
_INTERMEDIATE_NOTIFICATION = 0x20
_MESSAGE_TYPE_MASK = 0x3C

_HEADER_LENGTH = 16
_MAX_SM_LENGTH = 255
# SMPP 3.4 puts no limit on command_length; this bound only stops absurd input.
_MAX_PDU_LENGTH = 65_536

# message_state values (SMPP 3.4 section 5.2.28; 0 and 9 are SMPP 5.0 only).
MESSAGE_STATES: Mapping[int, ReceiptStatus] = {
    0: ReceiptStatus.ENROUTE,  # SCHEDULED
    1: ReceiptStatus.ENROUTE,
    2: ReceiptStatus.DELIVERED,
    3: ReceiptStatus.EXPIRED,
    4: ReceiptStatus.FAILED,  # DELETED
    5: ReceiptStatus.FAILED,  # UNDELIVERABLE
    6: ReceiptStatus.ACCEPTED,
    7: ReceiptStatus.UNKNOWN,
    8: ReceiptStatus.REJECTED,
    9: ReceiptStatus.FAILED,  # SKIPPED
}

# Error table for each network_error_code network type. A message-centre
# specific code (8) is read with the connection's own err table.
_NETWORK_TYPE_TABLES: Mapping[int, str] = {3: "gsm-map", 7: "smpp-command-status"}
_MESSAGE_CENTRE_SPECIFIC = 8


class _Pdu(NamedTuple):
    """Offsets and values of the fields a receipt needs."""

    data: bytes
    esm_class: int
    source_addr: str
    # Offset of sm_length, or -1 for data_sm, which has no short_message.
    sm_length_offset: int
    short_message: bytes
    tlv_offset: int
    tlvs: dict[int, bytes]


def _pdu_bytes(body: bytes) -> tuple[bytes, bool]:
    """Return the PDU bytes and whether the body was hex text."""
    if len(body) >= _HEADER_LENGTH and int.from_bytes(body[:4], "big") == len(body):
        return body, False
    try:
        data = binascii.unhexlify(b"".join(body.split()))
    except (binascii.Error, ValueError):
        raise ReceiptParseError(
            FORMAT,
            "command_length",
            body[:4].hex(),
            "body is neither a PDU whose command_length equals its size nor hex text of one",
        ) from None
    if len(data) < _HEADER_LENGTH or int.from_bytes(data[:4], "big") != len(data):
        raise ReceiptParseError(
            FORMAT,
            "command_length",
            data[:4].hex(),
            f"hex body decodes to {len(data)} octets, which does not match its command_length",
        )
    return data, True


def _c_octet_string(data: bytes, offset: int, max_length: int, field: str) -> tuple[bytes, int]:
    end = data.find(b"\x00", offset, offset + max_length)
    if end < 0:
        raise ReceiptParseError(
            FORMAT,
            field,
            data[offset : offset + max_length].hex(),
            f"no NUL terminator within {max_length} octets",
        )
    return data[offset:end], end + 1


def _octet(data: bytes, offset: int, field: str) -> int:
    if offset >= len(data):
        raise ReceiptParseError(FORMAT, field, "", "PDU ends before this field")
    return data[offset]


def _decode_pdu(data: bytes) -> _Pdu:
    if len(data) > _MAX_PDU_LENGTH:
        raise ReceiptParseError(FORMAT, "command_length", str(len(data)), "PDU is too long")
    command_id = int.from_bytes(data[4:8], "big")
    if command_id not in (DELIVER_SM, DATA_SM):
        raise ReceiptParseError(
            FORMAT, "command_id", f"0x{command_id:08x}", "expected deliver_sm or data_sm"
        )

    # Fields common to deliver_sm and data_sm, up to esm_class.
    offset = _HEADER_LENGTH
    _service_type, offset = _c_octet_string(data, offset, 6, "service_type")
    offset += 2  # source_addr_ton, source_addr_npi
    source_addr, offset = _c_octet_string(data, offset, 65, "source_addr")
    offset += 2  # dest_addr_ton, dest_addr_npi
    _destination, offset = _c_octet_string(data, offset, 65, "destination_addr")
    esm_class = _octet(data, offset, "esm_class")
    offset += 1

    # deliver_sm continues up to short_message; data_sm has two octets, then TLVs.
    sm_length_offset = -1
    short_message = b""
    if command_id == DELIVER_SM:
        offset += 2  # protocol_id, priority_flag
        _schedule, offset = _c_octet_string(data, offset, 17, "schedule_delivery_time")
        _validity, offset = _c_octet_string(data, offset, 17, "validity_period")
        offset += 4  # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
        sm_length_offset = offset
        sm_length = _octet(data, offset, "sm_length")
        offset += 1
        if offset + sm_length > len(data):
            raise ReceiptParseError(
                FORMAT, "short_message", str(sm_length), "sm_length runs past the end of the PDU"
            )
        short_message = data[offset : offset + sm_length]
        offset += sm_length
    else:
        offset += 2  # registered_delivery, data_coding
        if offset > len(data):
            raise ReceiptParseError(FORMAT, "data_coding", "", "PDU ends before this field")

    return _Pdu(
        data,
        esm_class,
        source_addr.decode("ascii", "replace"),
        sm_length_offset,
        short_message,
        offset,
        _read_tlvs(data, offset),
    )


def _read_tlvs(data: bytes, offset: int) -> dict[int, bytes]:
    tlvs: dict[int, bytes] = {}
    while offset < len(data):
        if offset + 4 > len(data):
            raise ReceiptParseError(
                FORMAT, "tlv", data[offset:].hex(), "optional parameter header is cut short"
            )
        tag = int.from_bytes(data[offset : offset + 2], "big")
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        start = offset + 4
        if start + length > len(data):
            raise ReceiptParseError(
                FORMAT, "tlv", f"0x{tag:04x}", f"length {length} runs past the end of the PDU"
            )
        tlvs.setdefault(tag, data[start : start + length])
        offset = start + length
    return tlvs


def _network_error(
    value: bytes, profile: CarrierProfile, warnings: list[str]
) -> tuple[str | None, str | None]:
    """Return the error code text and its table from a network_error_code value."""
    if len(value) != 3:
        warnings.append(f"network_error_code has {len(value)} octets instead of 3; ignored")
        return None, None
    if value.isdigit():
        # Three ASCII digits such as b"000": no network type, so the code is
        # read like the text `err`.
        return value.decode("ascii"), profile.error_table
    network_type = value[0]
    code = str(int.from_bytes(value[1:3], "big"))
    if network_type == _MESSAGE_CENTRE_SPECIFIC:
        return code, profile.error_table
    return code, _NETWORK_TYPE_TABLES.get(network_type, "unknown")


def _receipt_text(pdu: _Pdu) -> tuple[bytes, str]:
    """Return the receipt text and where it sits: short_message or message_payload."""
    if pdu.short_message.strip(b"\x00"):
        return pdu.short_message, "short_message"
    payload = pdu.tlvs.get(TAG_MESSAGE_PAYLOAD)
    if payload is not None:
        return payload, "message_payload"
    return b"", "short_message"


def _redact(pdu: _Pdu, text: bytes, location: str, parsed: ReceiptText) -> bytes | None:
    if not parsed.fields and text.strip(b" \x00"):
        # Text without a single receipt key may be message content, such as a
        # UCS-2 receipt this parser cannot read, so all of it is removed.
        redacted: bytes | None = REDACTION_MARKER.encode("ascii")
    else:
        redacted = redact_receipt_text(text, parsed.text_start)
    if redacted is None:
        return None
    data = pdu.data
    if location == "short_message":
        if len(redacted) > _MAX_SM_LENGTH:
            # The marker does not fit in sm_length's one octet: drop the text.
            redacted = text[: parsed.text_start + len(b"text:")]
        body = (
            data[_HEADER_LENGTH : pdu.sm_length_offset]
            + bytes([len(redacted)])
            + redacted
            + data[pdu.tlv_offset :]
        )
    else:
        body = data[_HEADER_LENGTH : pdu.tlv_offset] + _rebuild_tlvs(
            data, pdu.tlv_offset, TAG_MESSAGE_PAYLOAD, redacted
        )
    length = _HEADER_LENGTH + len(body)
    return length.to_bytes(4, "big") + data[4:_HEADER_LENGTH] + body


def _rebuild_tlvs(data: bytes, offset: int, tag_to_replace: int, value: bytes) -> bytes:
    # The TLVs were validated by _read_tlvs, so the walk cannot run past the end.
    parts: list[bytes] = []
    replaced = False
    while offset < len(data):
        tag = int.from_bytes(data[offset : offset + 2], "big")
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        end = offset + 4 + length
        if tag == tag_to_replace and not replaced:
            parts.append(data[offset : offset + 2] + len(value).to_bytes(2, "big") + value)
            replaced = True
        else:
            parts.append(data[offset:end])
        offset = end
    return b"".join(parts)


def parse_smpp_pdu(
    body: bytes,
    content_type: str,
    profile: CarrierProfile,
    metadata: Mapping[str, str],
) -> ParsedReceipts:
    """Parse a ``deliver_sm`` or ``data_sm`` receipt PDU.

    Args:
        body: The PDU bytes, or the PDU as hex text (whitespace ignored).
        content_type: Unused; the representation is detected from the body.
        profile: The connection's profile (zone, err table, synonyms).
        metadata: Unused.

    Returns:
        One receipt; the recipient is the PDU's ``source_addr``. The redacted
        body has the receipt text after ``text:`` replaced, in the form (binary
        or hex) the body arrived in.

    Raises:
        ReceiptParseError: The PDU is malformed, is not a receipt, or has
            neither a ``message_state`` nor a ``stat:`` value.
    """
    data, was_hex = _pdu_bytes(body)
    pdu = _decode_pdu(data)
    message_type = pdu.esm_class & _MESSAGE_TYPE_MASK
    if message_type not in _RECEIPT_TYPES:
        raise ReceiptParseError(
            FORMAT,
            "esm_class",
            f"0x{pdu.esm_class:02x}",
            "not a delivery receipt: esm_class & 0x3C must be 0x04 or 0x20",
        )
    text, location = _receipt_text(pdu)
    parsed = parse_receipt_text(text)
    fields = parsed.fields
    warnings: list[str] = []

    # Status: the message_state TLV first, then the text.
    state = pdu.tlvs.get(TAG_MESSAGE_STATE)
    if state is not None and len(state) == 1:
        status = MESSAGE_STATES.get(state[0], ReceiptStatus.UNKNOWN)
        if state[0] not in MESSAGE_STATES:
            warnings.append(f"{UNRECOGNIZED_STATUS} message_state {state[0]}")
    elif fields.get("stat"):
        status, warning = lookup_status(fields["stat"], STAT_WORDS, profile)
        if warning is not None:
            warnings.append(warning)
    else:
        raise ReceiptParseError(
            FORMAT,
            "message_state",
            "",
            "no message_state TLV and no stat value in the receipt text",
        )

    # Carrier id: receipted_message_id first, then the text.
    carrier_id = fields.get("id")
    receipted = pdu.tlvs.get(TAG_RECEIPTED_MESSAGE_ID)
    if receipted is not None and receipted.strip(b"\x00 "):
        carrier_id = receipted.decode("utf-8", "replace")

    error_code: str | None = fields.get("err")
    error_table: str | None = profile.error_table
    network_error = pdu.tlvs.get(TAG_NETWORK_ERROR_CODE)
    if network_error is not None:
        tlv_code, tlv_table = _network_error(network_error, profile, warnings)
        if tlv_table is not None:
            error_code, error_table = tlv_code, tlv_table

    segment_value = pdu.tlvs.get(TAG_SAR_SEGMENT_SEQNUM)
    segment = segment_value[0] if segment_value is not None and len(segment_value) == 1 else None

    done_text = fields.get("done date")
    done_at = read_done_date(done_text, profile_zone(profile, FORMAT), warnings)
    receipt = build_receipt(
        status,
        profile,
        carrier_message_id=carrier_id,
        # An intermediate notification never ends the message's lifecycle.
        final=False if message_type == _INTERMEDIATE_NOTIFICATION else None,
        error_code=error_code,
        error_table=error_table,
        done_at=done_at,
        source_time=done_text,
        recipient=pdu.source_addr,
        segment=segment or None,
        warnings=tuple(warnings),
    )

    rebuilt = _redact(pdu, text, location, parsed)
    if rebuilt is None:
        return ParsedReceipts((receipt,), body)
    stored = rebuilt.hex().encode("ascii") if was_hex else rebuilt
    return ParsedReceipts((receipt,), stored, (f"{location}.text",))
