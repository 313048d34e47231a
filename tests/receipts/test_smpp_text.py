"""SMPP Appendix B receipt text: layout variants, dates, zones, errors, redaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger.errors import ReceiptParseError
from ledger.receipts.model import CarrierProfile, NormalizedReceipt, ReceiptStatus
from ledger.receipts.parse import parse_receipt

MAP = CarrierProfile(name="smsc", error_table="gsm-map")


def parse(text: str | bytes, profile: CarrierProfile = MAP) -> NormalizedReceipt:
    body = text.encode("utf-8") if isinstance(text, str) else text
    parsed = parse_receipt("smpp-text", body, "text/plain", profile)
    assert len(parsed.receipts) == 1
    return parsed.receipts[0]


BASE = "id:77 sub:001 dlvrd:001 submit date:2603140925 done date:2603140926 stat:{stat} err:{err}"


@pytest.mark.parametrize(
    ("stat", "status", "final"),
    [
        ("DELIVRD", ReceiptStatus.DELIVERED, True),
        ("delivrd", ReceiptStatus.DELIVERED, True),
        ("Delivrd", ReceiptStatus.DELIVERED, True),
        ("undeliv", ReceiptStatus.FAILED, True),
        ("EXPIRED", ReceiptStatus.EXPIRED, True),
        ("DELETED", ReceiptStatus.FAILED, True),
        ("REJECTD", ReceiptStatus.REJECTED, True),
        ("ACCEPTD", ReceiptStatus.ACCEPTED, False),
        ("ENROUTE", ReceiptStatus.ENROUTE, False),
        ("UNKNOWN", ReceiptStatus.UNKNOWN, False),
        ("BUFFRED", ReceiptStatus.ENROUTE, False),
        ("ACKED", ReceiptStatus.ACCEPTED, False),
    ],
)
def test_stat_words_case_insensitive(stat: str, status: ReceiptStatus, final: bool) -> None:
    receipt = parse(BASE.format(stat=stat, err="000"))
    assert receipt.status is status
    assert receipt.final is final
    assert receipt.warnings == ()


def test_unknown_stat_word_is_unknown_not_failed() -> None:
    receipt = parse(BASE.format(stat="DLVRDOK", err="000"))
    assert receipt.status is ReceiptStatus.UNKNOWN
    assert receipt.final is False
    assert receipt.done_at is None
    assert any("DLVRDOK" in warning for warning in receipt.warnings)


def test_reordered_keys_and_extra_keys() -> None:
    receipt = parse(
        "stat:UNDELIV err:001 mccmnc:23415 price:0.01 done date:2603140926 "
        "id:ABC sub:1 dlvrd:0 submit date:2603140925"
    )
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.carrier_message_id == "ABC"
    assert receipt.error_code == "001"
    assert receipt.permanent is True
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, tzinfo=UTC)


def test_upper_case_keys() -> None:
    receipt = parse("ID:12 SUB:001 DLVRD:001 DONE DATE:2603140926 STAT:DELIVRD ERR:000")
    assert receipt.status is ReceiptStatus.DELIVERED
    assert receipt.carrier_message_id == "12"
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, tzinfo=UTC)


def test_underscore_date_keys() -> None:
    receipt = parse("id:12 submit_date:2603140925 done_date:2603140927 stat:DELIVRD")
    assert receipt.done_at == datetime(2026, 3, 14, 9, 27, tzinfo=UTC)


def test_echoed_stat_inside_text_ignored() -> None:
    receipt = parse(
        "id:9 sub:001 dlvrd:000 done date:2603140926 stat:UNDELIV err:006 "
        "text:stat:DELIVRD err:000 id:1"
    )
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.error_code == "006"
    assert receipt.carrier_message_id == "9"


def test_echoed_stat_after_capital_text_key() -> None:
    receipt = parse("id:9 done date:2603140926 stat:EXPIRED err:000 Text:stat:DELIVRD")
    assert receipt.status is ReceiptStatus.EXPIRED


def test_stat_only_in_text_is_missing() -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse("id:9 done date:2603140926 text:stat:DELIVRD")
    assert info.value.field == "stat"


def test_key_embedded_in_other_key_ignored() -> None:
    # "context:" is not the text key and "xid:" is not the id key.
    receipt = parse("xid:1 id:2 context:abc stat:DELIVRD")
    assert receipt.carrier_message_id == "2"


def test_missing_keys_allowed() -> None:
    receipt = parse("stat:DELIVRD")
    assert receipt.status is ReceiptStatus.DELIVERED
    assert receipt.carrier_message_id is None
    assert receipt.done_at is None
    assert receipt.error_code is None


def test_err_kept_whole() -> None:
    receipt = parse(BASE.format(stat="UNDELIV", err="1104"))
    assert receipt.error_code == "1104"
    assert receipt.permanent is None


def test_nonzero_err_on_delivered_not_failure() -> None:
    receipt = parse(BASE.format(stat="DELIVRD", err="034"))
    assert receipt.status is ReceiptStatus.DELIVERED
    assert receipt.permanent is None


def test_undeliv_with_zero_err_not_success() -> None:
    receipt = parse(BASE.format(stat="UNDELIV", err="000"))
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.error_code is None
    assert receipt.permanent is None


def test_unknown_error_table_gives_no_permanence() -> None:
    receipt = parse(BASE.format(stat="UNDELIV", err="001"), CarrierProfile(name="x"))
    assert receipt.error_code == "001"
    assert receipt.permanent is None


def test_twilio_smpp_table_differs_from_map() -> None:
    twilio = CarrierProfile(name="tw", error_table="twilio-smpp")
    assert parse(BASE.format(stat="UNDELIV", err="001"), twilio).permanent is False
    assert parse(BASE.format(stat="UNDELIV", err="001")).permanent is True


def test_profile_overrides_table() -> None:
    profile = CarrierProfile(
        name="x",
        error_table="gsm-map",
        permanent_codes=frozenset({"34"}),
        transient_codes=frozenset({"0013"}),
    )
    assert parse(BASE.format(stat="UNDELIV", err="034"), profile).permanent is True
    assert parse(BASE.format(stat="UNDELIV", err="013"), profile).permanent is False


def test_profile_synonym_maps_word() -> None:
    profile = CarrierProfile(name="x", status_synonyms={"delivok": "delivered"})
    receipt = parse(BASE.format(stat="DELIVOK", err="000"), profile)
    assert receipt.status is ReceiptStatus.DELIVERED
    assert receipt.warnings == ()


def test_profile_synonym_with_bad_target_warns() -> None:
    profile = CarrierProfile(name="x", status_synonyms={"DELIVOK": "done"})
    receipt = parse(BASE.format(stat="DELIVOK", err="000"), profile)
    assert receipt.status is ReceiptStatus.UNKNOWN
    assert receipt.warnings


def test_acceptance_final_on_non_confirming_route() -> None:
    profile = CarrierProfile(name="x", confirms_delivery=False)
    receipt = parse(BASE.format(stat="ACCEPTD", err="000"), profile)
    assert receipt.status is ReceiptStatus.ACCEPTED
    assert receipt.final is True
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, tzinfo=UTC)


@pytest.mark.parametrize(
    ("done", "expected"),
    [
        ("2603140926", datetime(2026, 3, 14, 9, 26, tzinfo=UTC)),
        ("260314092547", datetime(2026, 3, 14, 9, 25, 47, tzinfo=UTC)),
        ("202603140926", datetime(2026, 3, 14, 9, 26, tzinfo=UTC)),
        ("20260314092547", datetime(2026, 3, 14, 9, 25, 47, tzinfo=UTC)),
    ],
)
def test_date_widths(done: str, expected: datetime) -> None:
    assert parse(f"id:1 done date:{done} stat:DELIVRD").done_at == expected


def test_invalid_done_date_warns() -> None:
    receipt = parse("id:1 done date:2613999999 stat:DELIVRD")
    assert receipt.done_at is None
    assert receipt.source_time == "2613999999"
    assert any("not a calendar date" in warning for warning in receipt.warnings)


def test_done_date_of_odd_width_warns_about_width() -> None:
    receipt = parse("id:1 done date:26031409 stat:DELIVRD")
    assert receipt.done_at is None
    assert any("10, 12 or 14 digits" in warning for warning in receipt.warnings)


@pytest.mark.parametrize(
    ("zone", "expected_hour"),
    [("+03:00", 6), ("-0500", 14), ("UTC+3", 6), ("Europe/Berlin", 8), ("UTC", 9)],
)
def test_connection_zone_applied(zone: str, expected_hour: int) -> None:
    receipt = parse(
        "id:1 done date:2603140926 stat:DELIVRD", CarrierProfile(name="z", timezone=zone)
    )
    assert receipt.done_at is not None
    assert receipt.done_at.tzinfo is UTC
    assert receipt.done_at.hour == expected_hour


def test_unknown_zone_is_parse_error() -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse(
            "id:1 done date:2603140926 stat:DELIVRD", CarrierProfile(name="z", timezone="Mars/Base")
        )
    assert info.value.field == "timezone"


def test_nul_and_crlf_ignored() -> None:
    receipt = parse(b"id:42\x00 sub:001 done date:2603140926\r\nstat:DELIVRD err:000\x00")
    assert receipt.carrier_message_id == "42"
    assert receipt.status is ReceiptStatus.DELIVERED


def test_source_time_is_raw_done_date() -> None:
    assert parse("id:1 done date:260314092547 stat:DELIVRD").source_time == "260314092547"


def test_text_redacted_and_rest_identical() -> None:
    body = b"id:1 sub:001 dlvrd:001 done date:2603140926 stat:DELIVRD err:000 Text:secret stat:X"
    parsed = parse_receipt("smpp-text", body, "", MAP)
    assert parsed.redacted_body == (
        b"id:1 sub:001 dlvrd:001 done date:2603140926 stat:DELIVRD err:000 Text:[redacted]"
    )
    assert parsed.redactions == ("text",)


def test_empty_text_needs_no_redaction() -> None:
    body = b"id:1 stat:DELIVRD text:"
    parsed = parse_receipt("smpp-text", body, "", MAP)
    assert parsed.redacted_body == body
    assert parsed.redactions == ()


def test_binary_text_redacted() -> None:
    body = b"id:1 stat:DELIVRD text:\xff\xfe\x00\x01"
    parsed = parse_receipt("smpp-text", body, "", MAP)
    assert parsed.redacted_body == b"id:1 stat:DELIVRD text:[redacted]"


def test_non_receipt_text_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse("hello, are you there?")
    assert info.value.field == "stat"
    assert info.value.format == "smpp-text"


def test_blank_after_colon_tolerated() -> None:
    receipt = parse("id: 77 done date: 2603140926 stat: UNDELIV err: 001")
    assert receipt.carrier_message_id == "77"
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.error_code == "001"
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, tzinfo=UTC)


def test_empty_value_before_next_key() -> None:
    receipt = parse("id: stat:DELIVRD err: text:x")
    assert receipt.carrier_message_id is None
    assert receipt.status is ReceiptStatus.DELIVERED
    assert receipt.error_code is None
