"""Binary SMPP receipts: deliver_sm and data_sm, TLV precedence, esm_class, redaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger.errors import ReceiptParseError
from ledger.receipts.ids import canonical_carrier_id
from ledger.receipts.model import CarrierProfile, IdBase, ParsedReceipts, ReceiptStatus
from ledger.receipts.parse import parse_receipt

from .pdus import c_string, data_sm, deliver_sm, tlv

MAP = CarrierProfile(name="smsc", error_table="gsm-map")
TEXT = (
    b"id:0000436949 sub:001 dlvrd:001 submit date:2603140925 done date:2603140926 "
    b"stat:DELIVRD err:000 text:Hello there"
)

RECEIPTED_ID = 0x001E
MESSAGE_STATE = 0x0427
NETWORK_ERROR = 0x0423
MESSAGE_PAYLOAD = 0x0424
SAR_SEGMENT = 0x020F


def parse(pdu: bytes, profile: CarrierProfile = MAP) -> ParsedReceipts:
    return parse_receipt("smpp-pdu", pdu, "application/octet-stream", profile)


def test_text_only_receipt() -> None:
    receipt = parse(deliver_sm(TEXT)).receipts[0]
    assert receipt.status is ReceiptStatus.DELIVERED
    assert receipt.carrier_message_id == "0000436949"
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, tzinfo=UTC)
    assert receipt.recipient == "447700900123"


def test_tlv_id_and_state_win_over_text() -> None:
    tlvs = tlv(RECEIPTED_ID, c_string(b"6aad5")) + tlv(MESSAGE_STATE, bytes([5]))
    receipt = parse(deliver_sm(TEXT, tlvs=tlvs)).receipts[0]
    assert receipt.carrier_message_id == "6aad5"
    assert receipt.status is ReceiptStatus.FAILED
    # The hex TLV id and the zero-padded decimal text id are the same number.
    assert canonical_carrier_id("6aad5", IdBase.HEX) == canonical_carrier_id(
        "0000436949", IdBase.DECIMAL
    )


def test_esm_class_with_udhi_bit_is_receipt() -> None:
    receipt = parse(deliver_sm(TEXT, esm_class=0x44)).receipts[0]
    assert receipt.status is ReceiptStatus.DELIVERED


def test_intermediate_notification_never_final() -> None:
    tlvs = tlv(MESSAGE_STATE, bytes([2]))
    receipt = parse(deliver_sm(TEXT, esm_class=0x20, tlvs=tlvs)).receipts[0]
    assert receipt.final is False
    assert receipt.done_at is None


@pytest.mark.parametrize("esm_class", [0x00, 0x08, 0x10, 0x40, 0x18])
def test_non_receipt_esm_class_rejected(esm_class: int) -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse(deliver_sm(TEXT, esm_class=esm_class))
    assert info.value.field == "esm_class"


def test_message_payload_used_when_short_message_empty() -> None:
    payload = TEXT.replace(b"DELIVRD", b"EXPIRED") + b"\x00"
    parsed = parse(deliver_sm(b"", tlvs=tlv(MESSAGE_PAYLOAD, payload)))
    receipt = parsed.receipts[0]
    assert receipt.status is ReceiptStatus.EXPIRED
    assert receipt.permanent is False
    assert parsed.redactions == ("message_payload.text",)
    assert b"Hello there" not in parsed.redacted_body


def test_data_sm_with_payload() -> None:
    tlvs = tlv(MESSAGE_PAYLOAD, TEXT) + tlv(RECEIPTED_ID, c_string(b"ABC"))
    parsed = parse(data_sm(tlvs=tlvs))
    assert parsed.receipts[0].carrier_message_id == "ABC"
    assert parsed.receipts[0].status is ReceiptStatus.DELIVERED
    redacted = parsed.redacted_body
    assert int.from_bytes(redacted[:4], "big") == len(redacted)
    assert parse(redacted).receipts[0] == parsed.receipts[0]


def test_network_error_gsm_type() -> None:
    tlvs = tlv(MESSAGE_STATE, bytes([5])) + tlv(NETWORK_ERROR, bytes([3, 0, 1]))
    receipt = parse(deliver_sm(b"", tlvs=tlvs + tlv(RECEIPTED_ID, c_string(b"9")))).receipts[0]
    assert receipt.error_code == "1"
    assert receipt.error_table == "gsm-map"
    assert receipt.permanent is True


def test_network_error_gsm_type_ignores_profile_table() -> None:
    twilio = CarrierProfile(name="tw", error_table="twilio-smpp")
    tlvs = tlv(MESSAGE_STATE, bytes([5])) + tlv(NETWORK_ERROR, bytes([3, 0, 1]))
    assert parse(deliver_sm(b"", tlvs=tlvs), twilio).receipts[0].permanent is True


def test_network_error_smpp_type() -> None:
    tlvs = tlv(MESSAGE_STATE, bytes([8])) + tlv(NETWORK_ERROR, bytes([7, 0, 0x58]))
    receipt = parse(deliver_sm(b"", tlvs=tlvs)).receipts[0]
    assert receipt.status is ReceiptStatus.REJECTED
    assert receipt.error_code == "88"
    assert receipt.error_table == "smpp-command-status"
    assert receipt.permanent is False


def test_network_error_ascii_digits() -> None:
    tlvs = tlv(MESSAGE_STATE, bytes([5])) + tlv(NETWORK_ERROR, b"001")
    receipt = parse(deliver_sm(b"", tlvs=tlvs)).receipts[0]
    assert receipt.error_code == "001"
    assert receipt.error_table == "gsm-map"
    assert receipt.permanent is True


def test_network_error_ascii_zero_is_none() -> None:
    tlvs = tlv(NETWORK_ERROR, b"000")
    receipt = parse(deliver_sm(TEXT, tlvs=tlvs)).receipts[0]
    assert receipt.error_code is None


def test_network_error_wins_over_text_err() -> None:
    text = TEXT.replace(b"DELIVRD", b"UNDELIV").replace(b"err:000", b"err:001")
    tlvs = tlv(NETWORK_ERROR, bytes([3, 0, 27]))
    receipt = parse(deliver_sm(text, tlvs=tlvs)).receipts[0]
    assert receipt.error_code == "27"
    assert receipt.permanent is False


def test_network_error_bad_length_warns() -> None:
    receipt = parse(deliver_sm(TEXT, tlvs=tlv(NETWORK_ERROR, b"\x03\x00"))).receipts[0]
    assert receipt.error_code is None
    assert any("network_error_code" in warning for warning in receipt.warnings)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (0, ReceiptStatus.ENROUTE),
        (4, ReceiptStatus.FAILED),
        (6, ReceiptStatus.ACCEPTED),
        (7, ReceiptStatus.UNKNOWN),
        (9, ReceiptStatus.FAILED),
    ],
)
def test_message_state_values(state: int, status: ReceiptStatus) -> None:
    receipt = parse(deliver_sm(b"", tlvs=tlv(MESSAGE_STATE, bytes([state])))).receipts[0]
    assert receipt.status is status


def test_unknown_message_state_warns() -> None:
    receipt = parse(deliver_sm(b"", tlvs=tlv(MESSAGE_STATE, bytes([42])))).receipts[0]
    assert receipt.status is ReceiptStatus.UNKNOWN
    assert receipt.warnings


def test_segment_from_sar_tlv() -> None:
    receipt = parse(deliver_sm(TEXT, tlvs=tlv(SAR_SEGMENT, bytes([2])))).receipts[0]
    assert receipt.segment == 2


def test_no_state_anywhere_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse(deliver_sm(b"id:1 err:000"))
    assert info.value.field == "message_state"


def test_wrong_command_id_rejected() -> None:
    pdu = bytearray(deliver_sm(TEXT))
    pdu[4:8] = (0x00000004).to_bytes(4, "big")
    with pytest.raises(ReceiptParseError) as info:
        parse(bytes(pdu))
    assert info.value.field == "command_id"


def test_truncated_tlv_rejected() -> None:
    pdu = deliver_sm(TEXT, tlvs=tlv(RECEIPTED_ID, c_string(b"12345")))[:-3]
    fixed = len(pdu).to_bytes(4, "big") + pdu[4:]
    with pytest.raises(ReceiptParseError) as info:
        parse(fixed)
    assert info.value.field == "tlv"


def test_length_mismatch_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse(deliver_sm(TEXT) + b"\x00")
    assert info.value.field == "command_length"


def test_hex_text_body_accepted() -> None:
    pdu = deliver_sm(TEXT)
    hex_body = pdu.hex().encode("ascii")
    parsed = parse(hex_body)
    assert parsed.receipts == parse(pdu).receipts
    # The stored body keeps the form it arrived in.
    assert bytes.fromhex(parsed.redacted_body.decode("ascii")) == parse(pdu).redacted_body


def test_smpp_tlv_alias() -> None:
    receipts = parse_receipt("smpp-tlv", deliver_sm(TEXT), "", MAP).receipts
    assert receipts == parse(deliver_sm(TEXT)).receipts


def test_redaction_rebuilds_short_message() -> None:
    tlvs = tlv(RECEIPTED_ID, c_string(b"77"))
    pdu = deliver_sm(TEXT, tlvs=tlvs)
    parsed = parse(pdu)
    redacted = parsed.redacted_body
    assert b"Hello there" not in redacted
    assert b"text:[redacted]" in redacted
    assert int.from_bytes(redacted[:4], "big") == len(redacted)
    assert redacted.endswith(tlvs)
    assert redacted[4:16] == pdu[4:16]
    assert parsed.redactions == ("short_message.text",)
    assert parse(redacted).receipts == parsed.receipts


def test_redaction_fits_long_short_message() -> None:
    text = b"id:1 stat:DELIVRD " + b"x" * 230 + b" text:a"
    parsed = parse(deliver_sm(text))
    assert parse(parsed.redacted_body).receipts == parsed.receipts
    assert not parsed.redacted_body.endswith(b"text:a")


def test_pdu_without_text_kept_identical() -> None:
    pdu = deliver_sm(b"", tlvs=tlv(MESSAGE_STATE, bytes([2])))
    parsed = parse(pdu)
    assert parsed.redacted_body == pdu
    assert parsed.redactions == ()


def test_unreadable_short_message_fully_redacted() -> None:
    ucs2 = "id:1 stat:DELIVRD text:Hi".encode("utf-16-be")
    tlvs = tlv(MESSAGE_STATE, bytes([2])) + tlv(RECEIPTED_ID, c_string(b"1"))
    parsed = parse(deliver_sm(ucs2, tlvs=tlvs))
    assert parsed.receipts[0].status is ReceiptStatus.DELIVERED
    assert ucs2 not in parsed.redacted_body
    assert b"[redacted]" in parsed.redacted_body
    assert parsed.redactions == ("short_message.text",)
