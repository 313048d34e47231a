"""Kannel dlr-url reports and Jasmin HTTP reports."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode

import pytest

from ledger.errors import ReceiptParseError
from ledger.receipts.model import CarrierProfile, NormalizedReceipt, ParsedReceipts, ReceiptStatus
from ledger.receipts.parse import parse_receipt

MAP = CarrierProfile(name="kannel-a", error_table="gsm-map")
RECEIPT = (
    "id:61 sub:001 dlvrd:000 submit date:2603140925 done date:2603140926 "
    "stat:{stat} err:{err} text:Hi Bob"
)


def kannel(fields: dict[str, str], metadata: dict[str, str] | None = None) -> ParsedReceipts:
    body = urlencode(fields).encode("ascii")
    return parse_receipt("kannel", body, "application/x-www-form-urlencoded", MAP, metadata)


def kannel_receipt(fields: dict[str, str]) -> NormalizedReceipt:
    return kannel(fields).receipts[0]


@pytest.mark.parametrize(
    ("stat", "status", "permanent"),
    [
        ("EXPIRED", ReceiptStatus.EXPIRED, False),
        ("REJECTD", ReceiptStatus.REJECTED, None),
        ("DELETED", ReceiptStatus.FAILED, None),
        ("undeliv", ReceiptStatus.FAILED, None),
    ],
)
def test_type_2_refined_by_reply(stat: str, status: ReceiptStatus, permanent: bool | None) -> None:
    receipt = kannel_receipt({"dlr": "2", "reply": RECEIPT.format(stat=stat, err="000")})
    assert receipt.status is status
    assert receipt.final is True
    assert receipt.permanent is permanent


def test_type_2_without_reply_warns() -> None:
    receipt = kannel_receipt({"dlr": "2", "fid": "61"})
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.permanent is None
    assert receipt.warnings


def test_type_2_unknown_word_not_failed() -> None:
    receipt = kannel_receipt({"dlr": "2", "reply": RECEIPT.format(stat="WEIRD", err="000")})
    assert receipt.status is ReceiptStatus.UNKNOWN
    assert receipt.warnings


def test_lower_case_delivered_word_not_failure() -> None:
    receipt = kannel_receipt({"dlr": "2", "reply": RECEIPT.format(stat="delivrd", err="000")})
    assert receipt.status is ReceiptStatus.DELIVERED


@pytest.mark.parametrize(
    ("dlr_type", "status", "final"),
    [
        ("1", ReceiptStatus.DELIVERED, True),
        ("4", ReceiptStatus.ENROUTE, False),
        ("8", ReceiptStatus.ACCEPTED, False),
        ("16", ReceiptStatus.REJECTED, True),
        ("32", ReceiptStatus.ENROUTE, False),
    ],
)
def test_type_without_reply(dlr_type: str, status: ReceiptStatus, final: bool) -> None:
    receipt = kannel_receipt({"type": dlr_type, "fid": "61"})
    assert receipt.status is status
    assert receipt.final is final
    assert receipt.carrier_message_id == "61"


def test_nack_decimal_code() -> None:
    receipt = kannel_receipt({"dlr": "16", "reply": "NACK/88/Throttling error"})
    assert receipt.error_code == "88"
    assert receipt.permanent is False
    assert receipt.carrier_message_id is None


def test_nack_without_code() -> None:
    receipt = kannel_receipt({"dlr": "16", "reply": "NACK/Retries Exceeded"})
    assert receipt.status is ReceiptStatus.REJECTED
    assert receipt.error_code is None
    assert receipt.permanent is None


def test_err_parameter_used_without_reply() -> None:
    receipt = kannel_receipt({"dlr": "2", "err": "027"})
    assert receipt.error_code == "027"
    assert receipt.permanent is False


def test_reply_err_kept_whole() -> None:
    receipt = kannel_receipt({"dlr": "2", "reply": RECEIPT.format(stat="UNDELIV", err="1104")})
    assert receipt.error_code == "1104"


def test_foreign_id_falls_back_to_text_id() -> None:
    receipt = kannel_receipt(
        {"dlr": "1", "fid": "", "reply": RECEIPT.format(stat="DELIVRD", err="0")}
    )
    assert receipt.carrier_message_id == "61"
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, tzinfo=UTC)


def test_custom_parameter_names_from_metadata() -> None:
    parsed = kannel(
        {"k": "1", "a": RECEIPT.format(stat="DELIVRD", err="0"), "f": "X1", "p": "+447700900131"},
        {
            "kannel.type_param": "k",
            "kannel.reply_param": "a",
            "kannel.foreign_id_param": "f",
            "kannel.recipient_param": "p",
        },
    )
    receipt = parsed.receipts[0]
    assert receipt.status is ReceiptStatus.DELIVERED
    assert receipt.carrier_message_id == "X1"
    assert receipt.recipient == "+447700900131"
    assert parsed.redactions == ("a.text",)


def test_no_type_and_no_stat_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        kannel({"ref": "L-1", "fid": "61"})
    assert info.value.field == "type"


def test_reply_text_redacted_other_pairs_identical() -> None:
    body = b"ref=ldg-1&dlr=1&fid=61&reply=id%3A61+stat%3ADELIVRD+text%3ASecret+words&to=%2B4477"
    parsed = parse_receipt("kannel", body, "", MAP)
    assert parsed.redactions == ("reply.text",)
    assert parsed.redacted_body.startswith(b"ref=ldg-1&dlr=1&fid=61&reply=")
    assert parsed.redacted_body.endswith(b"&to=%2B4477")
    reply = parse_qs(parsed.redacted_body.decode())["reply"][0]
    assert reply == "id:61 stat:DELIVRD text:[redacted]"


def test_query_with_path_prefix() -> None:
    body = b"/dlr?dlr=1&fid=61"
    parsed = parse_receipt("kannel", body, "", MAP)
    assert parsed.receipts[0].status is ReceiptStatus.DELIVERED


def jasmin(fields: dict[str, str], metadata: dict[str, str] | None = None) -> ParsedReceipts:
    body = urlencode(fields).encode("ascii")
    return parse_receipt("jasmin", body, "application/x-www-form-urlencoded", MAP, metadata)


LEVEL_2 = {
    "id": "7c1e4f2a-9b3d-4e6f-8a1b-2c3d4e5f6a7d",
    "id_smsc": "BB42DD",
    "message_status": "UNDELIV",
    "level": "2",
    "subdate": "ND",
    "donedate": "ND",
    "sub": "ND",
    "dlvrd": "ND",
    "err": "ND",
    "text": "Hi Bob",
}


def test_jasmin_nd_placeholders() -> None:
    parsed = jasmin(LEVEL_2)
    receipt = parsed.receipts[0]
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.error_code is None
    assert receipt.done_at is None
    assert receipt.source_time is None
    assert receipt.carrier_message_id == "BB42DD"
    assert parsed.redactions == ("text",)
    assert b"Hi+Bob" not in parsed.redacted_body


def test_jasmin_level_3_request_gets_both_reports() -> None:
    metadata = {"jasmin_requested_level": "3"}
    first = jasmin({"id": "u1", "message_status": "ESME_ROK", "level": "1"}, metadata)
    second = jasmin({**LEVEL_2, "message_status": "DELIVRD", "donedate": "2603140926"}, metadata)
    assert first.receipts[0].status is ReceiptStatus.ACCEPTED
    assert first.receipts[0].warnings == ()
    assert second.receipts[0].status is ReceiptStatus.DELIVERED
    assert second.receipts[0].warnings == ()


def test_jasmin_level_mismatch_warns() -> None:
    parsed = jasmin(
        {"id": "u1", "message_status": "ESME_ROK", "level": "1"}, {"jasmin_requested_level": "2"}
    )
    assert parsed.receipts[0].warnings


def test_jasmin_acceptd_not_final() -> None:
    receipt = jasmin({**LEVEL_2, "message_status": "ACCEPTD"}).receipts[0]
    assert receipt.status is ReceiptStatus.ACCEPTED
    assert receipt.final is False


def test_jasmin_throttled_is_transient_rejection() -> None:
    receipt = jasmin({"id": "u1", "message_status": "ESME_RTHROTTLED", "level": "1"}).receipts[0]
    assert receipt.status is ReceiptStatus.REJECTED
    assert receipt.error_code == "ESME_RTHROTTLED"
    assert receipt.permanent is False


def test_jasmin_missing_status_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        jasmin({"id": "u1", "level": "1"})
    assert info.value.field == "message_status"
