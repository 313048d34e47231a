"""Shared rules: zones and dates, error codes, permanence, tables, dispatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledger.errors import ReceiptParseError
from ledger.receipts.classification import build_receipt, clean_error_code, decide_permanent
from ledger.receipts.dates import (
    from_epoch_millis,
    parse_iso_datetime,
    parse_smpp_date,
    resolve_zone,
)
from ledger.receipts.error_tables import ERROR_TABLES, canonical_code, classify_code
from ledger.receipts.model import CarrierProfile, ReceiptStatus
from ledger.receipts.parse import FORMATS, MAX_BODY_BYTES, parse_receipt

PROFILE = CarrierProfile(name="rules")


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("UTC", timedelta(0)),
        ("+03:00", timedelta(hours=3)),
        ("-0530", timedelta(hours=-5, minutes=-30)),
        ("GMT+2", timedelta(hours=2)),
        ("+7", timedelta(hours=7)),
    ],
)
def test_resolve_fixed_zones(name: str, offset: timedelta) -> None:
    assert resolve_zone(name).utcoffset(None) == offset


def test_resolve_iana_zone_follows_dst() -> None:
    zone = resolve_zone("Europe/London")
    summer = parse_smpp_date("2607011200", zone)
    winter = parse_smpp_date("2601011200", zone)
    assert summer == datetime(2026, 7, 1, 11, 0, tzinfo=UTC)
    assert winter == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", ["Mars/Base", "+25:00", "three"])
def test_resolve_unknown_zone_raises(name: str) -> None:
    with pytest.raises(ValueError, match="zone"):
        resolve_zone(name)


@pytest.mark.parametrize("text", ["", "26031409", "2603140926x", "2602300926", "0000000000000000"])
def test_invalid_smpp_dates(text: str) -> None:
    assert parse_smpp_date(text, UTC) is None


def test_twelve_digits_prefers_seconds_form() -> None:
    # 2610121314 15 is a valid YYMMDDhhmmss, so that reading wins.
    assert parse_smpp_date("261012131415", UTC) == datetime(2026, 10, 12, 13, 14, 15, tzinfo=UTC)
    assert parse_smpp_date("202610121314", UTC) == datetime(2026, 10, 12, 13, 14, tzinfo=UTC)


def test_extreme_years_do_not_overflow() -> None:
    assert parse_smpp_date("00010101000000", timezone(timedelta(hours=5))) is None
    assert parse_smpp_date("99991231235959", timezone(timedelta(hours=-5))) is None


def test_iso_parsing_forms() -> None:
    assert parse_iso_datetime("2026-03-14T09:26:00.000+0000", UTC) == datetime(
        2026, 3, 14, 9, 26, tzinfo=UTC
    )
    assert parse_iso_datetime("2026-03-14 12:26:00", timezone(timedelta(hours=3))) == datetime(
        2026, 3, 14, 9, 26, tzinfo=UTC
    )
    assert parse_iso_datetime("yesterday", UTC) is None
    assert parse_iso_datetime("\uff12\uff10\uff12\uff16-03-14", UTC) is None  # full-width digits


def test_epoch_millis_bounds() -> None:
    assert from_epoch_millis(1773480360000) == datetime(2026, 3, 14, 9, 26, tzinfo=UTC)
    assert from_epoch_millis(-1) is None
    assert from_epoch_millis(10**17) is None


@pytest.mark.parametrize("raw", [None, "", "  ", "0", "000", "0x00000000", "ND", "nd", "-", "\x00"])
def test_no_error_values_become_none(raw: str | None) -> None:
    assert clean_error_code(raw) is None


@pytest.mark.parametrize("raw", ["001", "0x0000000b", "ESME_RINVDSTADR", "1104", "X9"])
def test_error_codes_kept_verbatim(raw: str) -> None:
    assert clean_error_code(f" {raw}\x00") == raw


@pytest.mark.parametrize(
    ("code", "canonical"),
    [
        ("001", "1"),
        ("0x0000000B", "11"),
        ("ESME_RTHROTTLED", "88"),
        ("abc", "ABC"),
        ("9" * 40, "9" * 40),
    ],
)
def test_canonical_codes(code: str, canonical: str) -> None:
    assert canonical_code(code) == canonical


def test_every_table_has_only_known_values() -> None:
    for rows in ERROR_TABLES.values():
        assert all(value in (True, False, None) for value in rows.values())
        assert all(key == canonical_code(key) for key in rows)


def test_unknown_table_classifies_nothing() -> None:
    assert classify_code("no-such-table", "1") is None
    assert classify_code("unknown", "1") is None
    assert classify_code("gsm-map", "999") is None


def test_expired_always_transient() -> None:
    assert (
        decide_permanent(ReceiptStatus.EXPIRED, "1", "gsm-map", PROFILE, source_flag=True) is False
    )


@pytest.mark.parametrize(
    "status",
    [ReceiptStatus.DELIVERED, ReceiptStatus.ACCEPTED, ReceiptStatus.ENROUTE, ReceiptStatus.UNKNOWN],
)
def test_non_failures_have_no_permanence(status: ReceiptStatus) -> None:
    assert decide_permanent(status, "1", "gsm-map", PROFILE, source_flag=True) is None


def test_cancellation_has_no_permanence() -> None:
    assert decide_permanent(ReceiptStatus.FAILED, "1", "gsm-map", PROFILE, cancelled=True) is None


def test_profile_override_beats_source_flag() -> None:
    profile = CarrierProfile(name="p", transient_codes=frozenset({"13"}))
    assert (
        decide_permanent(ReceiptStatus.FAILED, "013", "infobip", profile, source_flag=True) is False
    )


def test_done_at_dropped_for_non_final() -> None:
    when = datetime(2026, 3, 14, tzinfo=UTC)
    receipt = build_receipt(ReceiptStatus.ENROUTE, PROFILE, carrier_message_id=" 1 ", done_at=when)
    assert receipt.done_at is None
    assert receipt.carrier_message_id == "1"


def test_error_table_only_with_code() -> None:
    receipt = build_receipt(
        ReceiptStatus.FAILED,
        PROFILE,
        carrier_message_id="1",
        error_code="000",
        error_table="gsm-map",
    )
    assert receipt.error_code is None
    assert receipt.error_table is None


def test_unknown_format_names_format_field() -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse_receipt("fax", b"x", "", PROFILE)
    assert info.value.field == "format"
    assert "smpp-text" in info.value.reason


def test_format_name_case_insensitive() -> None:
    receipts = parse_receipt(" SMPP-Text ", b"id:1 stat:DELIVRD", "", PROFILE).receipts
    assert receipts[0].status is ReceiptStatus.DELIVERED


def test_oversized_body_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse_receipt("smpp-text", b"x" * (MAX_BODY_BYTES + 1), "", PROFILE)
    assert info.value.field == "body"


def test_all_formats_listed() -> None:
    assert set(FORMATS) == {
        "aws",
        "infobip",
        "jasmin",
        "kannel",
        "messagebird",
        "plivo",
        "sinch",
        "smpp-pdu",
        "smpp-text",
        "smpp-tlv",
        "sns",
        "twilio",
        "vonage",
    }


def test_parse_errors_mask_numbers() -> None:
    body = b"To=%2B447700900123&MessageSid=SM9&MessageStatus=delivered"
    with pytest.raises(ReceiptParseError) as raised:
        parse_receipt("infobip", body, "application/json", CarrierProfile(name="c"))
    assert "447700900123" not in raised.value.message
    assert "447700900123" not in raised.value.violations[0].description
