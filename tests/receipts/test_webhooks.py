"""Aggregator webhooks: Twilio, Vonage, Plivo, Sinch, Infobip, AWS, MessageBird."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from ledger.errors import ReceiptParseError
from ledger.receipts.model import CarrierProfile, NormalizedReceipt, ParsedReceipts, ReceiptStatus
from ledger.receipts.parse import parse_receipt

PROFILE = CarrierProfile(name="hooks")
FORM = "application/x-www-form-urlencoded"


def form(fmt: str, fields: dict[str, str], profile: CarrierProfile = PROFILE) -> ParsedReceipts:
    return parse_receipt(fmt, urlencode(fields).encode("utf-8"), FORM, profile)


def as_json(fmt: str, document: Any, profile: CarrierProfile = PROFILE) -> ParsedReceipts:
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return parse_receipt(fmt, body, "application/json", profile)


def one(parsed: ParsedReceipts) -> NormalizedReceipt:
    assert len(parsed.receipts) == 1
    return parsed.receipts[0]


# Twilio


def twilio(status: str, **extra: str) -> ParsedReceipts:
    fields = {"MessageSid": "SM1", "MessageStatus": status, "To": "+14155550123", **extra}
    return form("twilio", fields)


def test_twilio_canceled_is_final_without_permanence() -> None:
    receipt = one(twilio("canceled"))
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.final is True
    assert receipt.permanent is None


def test_twilio_read_is_delivered() -> None:
    assert one(twilio("read")).status is ReceiptStatus.DELIVERED


def test_twilio_sms_status_alias() -> None:
    receipt = one(form("twilio", {"SmsSid": "SM2", "SmsStatus": "delivered"}))
    assert receipt.carrier_message_id == "SM2"
    assert receipt.status is ReceiptStatus.DELIVERED


def test_twilio_body_redacted() -> None:
    parsed = twilio("sent", Body="secret words")
    assert parsed.redactions == ("Body",)
    assert b"secret" not in parsed.redacted_body
    assert parse_qs(parsed.redacted_body.decode())["Body"] == ["[redacted]"]


def test_twilio_unknown_status_warns() -> None:
    receipt = one(twilio("teleported"))
    assert receipt.status is ReceiptStatus.UNKNOWN
    assert receipt.final is False
    assert receipt.warnings


def test_twilio_inbound_status_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        twilio("received")
    assert info.value.field == "MessageStatus"


def test_twilio_error_code_zero_is_none() -> None:
    assert one(twilio("delivered", ErrorCode="0")).error_code is None


def test_twilio_json_body_same_fields() -> None:
    document = {
        "MessageSid": "SM9",
        "MessageStatus": "undelivered",
        "ErrorCode": 30003,
        "To": "+14155550123",
        "Body": "secret words",
    }
    parsed = as_json("twilio", document)
    receipt = one(parsed)
    assert receipt.carrier_message_id == "SM9"
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.error_code == "30003"
    assert parsed.redactions == ("Body",)
    assert b"secret words" not in parsed.redacted_body


def test_twilio_json_aliases_and_missing_status() -> None:
    receipt = one(as_json("twilio", {"SmsSid": "SM2", "SmsStatus": "delivered"}))
    assert receipt.carrier_message_id == "SM2"
    assert receipt.status is ReceiptStatus.DELIVERED
    with pytest.raises(ReceiptParseError) as info:
        as_json("twilio", {"MessageSid": "SM3"})
    assert info.value.field == "MessageStatus"


def test_twilio_done_date_in_profile_zone() -> None:
    profile = CarrierProfile(name="tw", timezone="-05:00")
    fields = {"MessageSid": "SM1", "MessageStatus": "delivered", "RawDlrDoneDate": "2603140926"}
    receipt = one(form("twilio", fields, profile))
    assert receipt.done_at == datetime(2026, 3, 14, 14, 26, tzinfo=UTC)


# Vonage

VONAGE = {
    "msisdn": "447700900140",
    "to": "LEDGERTEST",
    "messageId": "0C000000A1B2C3D4",
    "status": "failed",
    "scts": "2603140926",
    "err-code": "2",
}


def test_vonage_json_form_and_query_agree() -> None:
    from_json = one(as_json("vonage", VONAGE))
    from_form = one(form("vonage", VONAGE))
    query = urlencode(VONAGE).encode()
    from_query = one(parse_receipt("vonage", query, f"{FORM}; transport=GET-query-string", PROFILE))
    assert from_json == from_form == from_query
    assert from_json.recipient == "447700900140"
    assert from_json.permanent is False


def test_vonage_json_numbers_accepted() -> None:
    receipt = one(as_json("vonage", {**VONAGE, "err-code": 3, "scts": "2603140926"}))
    assert receipt.error_code == "3"
    assert receipt.permanent is True


def test_vonage_json_without_content_type() -> None:
    body = json.dumps(VONAGE).encode()
    assert one(parse_receipt("vonage", body, "", PROFILE)).status is ReceiptStatus.FAILED


def test_vonage_buffered_is_enroute() -> None:
    receipt = one(form("vonage", {**VONAGE, "status": "buffered", "err-code": "0"}))
    assert receipt.status is ReceiptStatus.ENROUTE
    assert receipt.done_at is None


def test_vonage_json_text_redacted() -> None:
    parsed = as_json("vonage", {**VONAGE, "text": "secret"})
    assert parsed.redactions == ("text",)
    assert json.loads(parsed.redacted_body)["text"] == "[redacted]"


def test_vonage_json_without_body_field_kept_identical() -> None:
    body = json.dumps(VONAGE, indent=2).encode()
    parsed = parse_receipt("vonage", body, "application/json", PROFILE)
    assert parsed.redacted_body == body


# Plivo


def test_plivo_rejected_status() -> None:
    receipt = one(form("plivo", {"MessageUUID": "u1", "Status": "rejected", "ErrorCode": "90"}))
    assert receipt.status is ReceiptStatus.REJECTED
    assert receipt.permanent is True


def test_plivo_unknown_error_code() -> None:
    receipt = one(form("plivo", {"MessageUUID": "u1", "Status": "failed", "ErrorCode": "1000"}))
    assert receipt.permanent is None


def test_plivo_sequence_as_source_time() -> None:
    receipt = one(form("plivo", {"MessageUUID": "u1", "Status": "queued", "Sequence": "1"}))
    assert receipt.source_time == "Sequence=1"


def test_plivo_report_time_in_profile_zone() -> None:
    profile = CarrierProfile(name="p", timezone="+10:00")
    fields = {
        "MessageUUID": "u1",
        "Status": "delivered",
        "DeliveryReportTime": "2026-03-14 19:26:01.123456",
    }
    receipt = one(form("plivo", fields, profile))
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, 1, 123456, tzinfo=UTC)


# Sinch

SINCH = {
    "type": "recipient_delivery_report_sms",
    "batch_id": "01JP3K7Q8R9S0T1V2W3X4Y5Z6A",
    "recipient": "447700900150",
    "status": "Delivered",
    "code": 0,
    "at": "2026-03-14T09:26:02.417Z",
    "operator_status_at": "2026-03-14T09:26:00Z",
}


def test_sinch_batch_summary_rejected() -> None:
    summary = {
        "type": "delivery_report_sms",
        "batch_id": "01JP",
        "statuses": [{"code": 0, "status": "Delivered", "count": 2}],
    }
    with pytest.raises(ReceiptParseError) as info:
        as_json("sinch", summary)
    assert info.value.field == "type"


def test_sinch_summary_without_type_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        as_json("sinch", {"batch_id": "01JP", "statuses": []})
    assert info.value.field == "statuses"


def test_sinch_unknown_is_final() -> None:
    receipt = one(as_json("sinch", {**SINCH, "status": "Unknown"}))
    assert receipt.status is ReceiptStatus.UNKNOWN
    assert receipt.final is True
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, tzinfo=UTC)


def test_sinch_cancelled_has_no_permanence() -> None:
    receipt = one(as_json("sinch", {**SINCH, "status": "Cancelled", "code": 407}))
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.error_code == "407"
    assert receipt.permanent is None


def test_sinch_queued_code_restates_status() -> None:
    receipt = one(as_json("sinch", {**SINCH, "status": "Queued", "code": 400}))
    assert receipt.status is ReceiptStatus.ENROUTE
    assert receipt.error_code is None


def test_sinch_mms_per_recipient_accepted() -> None:
    receipt = one(as_json("sinch", {**SINCH, "type": "recipient_delivery_report_mms"}))
    assert receipt.recipient == "447700900150"


# Infobip


def infobip_report(
    message_id: str, status: dict[str, Any], error: dict[str, Any]
) -> dict[str, Any]:
    return {
        "bulkId": "bulk-1",
        "messageId": message_id,
        "to": "447700900160",
        "doneAt": "2026-03-14T09:26:00.000+0100",
        "status": status,
        "error": error,
    }


NO_ERROR = {"groupId": 0, "id": 0, "name": "NO_ERROR", "permanent": False}


def test_infobip_batch_yields_receipt_each() -> None:
    results = [
        infobip_report("m1", {"groupId": 3, "id": 5, "name": "DELIVERED_TO_HANDSET"}, NO_ERROR),
        infobip_report(
            "m2",
            {"groupId": 2, "id": 9, "name": "UNDELIVERABLE_NOT_DELIVERED"},
            {"id": 13, "name": "EC_CALL_BARRED", "permanent": False},
        ),
        infobip_report("m3", {"groupId": 1, "id": 7, "name": "PENDING_ENROUTE"}, NO_ERROR),
    ]
    parsed = as_json("infobip", {"results": results})
    assert [r.carrier_message_id for r in parsed.receipts] == ["m1", "m2", "m3"]
    assert [r.status for r in parsed.receipts] == [
        ReceiptStatus.DELIVERED,
        ReceiptStatus.FAILED,
        ReceiptStatus.ENROUTE,
    ]
    # Infobip's own flag wins: call barred is not permanent there.
    assert parsed.receipts[1].permanent is False
    assert parsed.receipts[0].done_at == datetime(2026, 3, 14, 8, 26, tzinfo=UTC)
    assert parsed.receipts[2].done_at is None


def test_infobip_flag_ignored_for_non_failure() -> None:
    report = infobip_report(
        "m1", {"id": 2, "name": "DELIVERED_TO_OPERATOR"}, {"id": 1, "permanent": True}
    )
    receipt = one(as_json("infobip", {"results": [report]}))
    assert receipt.status is ReceiptStatus.ACCEPTED
    assert receipt.permanent is None


def test_infobip_dlr_unknown_is_final_unknown() -> None:
    report = infobip_report("m1", {"groupId": 4, "id": 29, "name": "EXPIRED_DLR_UNKNOWN"}, NO_ERROR)
    receipt = one(as_json("infobip", {"results": [report]}))
    assert receipt.status is ReceiptStatus.UNKNOWN
    assert receipt.final is True


def test_infobip_unknown_id_uses_name() -> None:
    report = infobip_report("m1", {"id": 999, "name": "REJECTED_SOMETHING_NEW"}, NO_ERROR)
    assert one(as_json("infobip", {"results": [report]})).status is ReceiptStatus.REJECTED


def test_infobip_group_name_alone_not_trusted() -> None:
    report = infobip_report("m1", {"id": 999, "groupName": "DELIVERED"}, NO_ERROR)
    receipt = one(as_json("infobip", {"results": [report]}))
    assert receipt.status is ReceiptStatus.UNKNOWN
    assert receipt.warnings


def test_infobip_missing_flag_uses_table() -> None:
    report = infobip_report("m1", {"id": 9}, {"id": 1, "name": "EC_UNKNOWN_SUBSCRIBER"})
    assert one(as_json("infobip", {"results": [report]})).permanent is True


def test_infobip_empty_results_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        as_json("infobip", {"results": []})
    assert info.value.field == "results"


def test_infobip_report_without_status_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        as_json("infobip", {"results": [{"messageId": "m1"}]})
    assert info.value.field == "results[0].status"


# AWS

EVENT = {
    "eventType": "TEXT_BLOCKED",
    "eventVersion": "1.0",
    "eventTimestamp": 1773480360000,
    "isFinal": True,
    "destinationPhoneNumber": "+14155550165",
    "messageId": "0f1e",
    "messageStatus": "BLOCKED",
}


def sns_envelope(message: str, kind: str = "Notification") -> dict[str, Any]:
    return {
        "Type": kind,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:sms-events",
        "Message": message,
        "Timestamp": "2026-03-14T09:26:01.000Z",
        "SignatureVersion": "2",
    }


def test_aws_event_in_sns_envelope() -> None:
    wrapped = one(as_json("aws", sns_envelope(json.dumps(EVENT))))
    assert wrapped == one(as_json("aws", EVENT))
    assert wrapped.error_code == "BLOCKED"
    assert wrapped.permanent is True
    assert wrapped.recipient == "+14155550165"


def test_sns_format_alias() -> None:
    assert one(as_json("sns", sns_envelope(json.dumps(EVENT)))).status is ReceiptStatus.FAILED


def test_aws_subscription_confirmation_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        as_json("aws", sns_envelope("You have chosen to subscribe", "SubscriptionConfirmation"))
    assert info.value.field == "Type"


def test_aws_envelope_with_invalid_inner_json() -> None:
    with pytest.raises(ReceiptParseError):
        as_json("aws", sns_envelope("not json"))


def test_aws_event_type_without_message_status() -> None:
    event = {k: v for k, v in EVENT.items() if k != "messageStatus"}
    receipt = one(as_json("aws", {**event, "eventType": "TEXT_PROTECT_BLOCKED"}))
    assert receipt.status is ReceiptStatus.REJECTED
    assert receipt.error_code == "PROTECT_BLOCKED"


def test_aws_unknown_not_final_unless_flagged() -> None:
    event = {**EVENT, "eventType": "TEXT_UNKNOWN", "messageStatus": "UNKNOWN", "isFinal": False}
    receipt = one(as_json("aws", event))
    assert receipt.status is ReceiptStatus.UNKNOWN
    assert receipt.final is False
    assert receipt.permanent is None


def test_aws_body_redacted_inside_envelope() -> None:
    event = {**EVENT, "messageBody": "secret"}
    parsed = as_json("aws", sns_envelope(json.dumps(event)))
    assert parsed.redactions == ("Message.messageBody",)
    inner = json.loads(json.loads(parsed.redacted_body)["Message"])
    assert inner["messageBody"] == "[redacted]"


def test_sns_log_failure_is_final_failure() -> None:
    log = {
        "notification": {"messageId": "n1", "timestamp": "2026-03-14 09:26:00.100"},
        "delivery": {"destination": "+14155550167", "dwellTimeMs": 500},
        "status": "FAILURE",
    }
    receipt = one(as_json("aws", log))
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.final is True
    assert receipt.permanent is None
    # Without dwellTimeMsUntilDeviceAck the provider dwell time is added.
    expected = datetime(2026, 3, 14, 9, 26, 0, 100000, tzinfo=UTC) + timedelta(milliseconds=500)
    assert receipt.done_at == expected


def test_aws_neither_shape_rejected() -> None:
    with pytest.raises(ReceiptParseError) as info:
        as_json("aws", {"hello": "world"})
    assert info.value.field == "eventType"


# MessageBird / Bird


def test_messagebird_failure_with_code() -> None:
    fields = {
        "id": "mb1",
        "recipient": "447700900170",
        "status": "delivery_failed",
        "statusErrorCode": "1",
        "statusDatetime": "2026-03-14T10:26:00+01:00",
    }
    receipt = one(form("messagebird", fields))
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.permanent is True
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, tzinfo=UTC)


def test_bird_failure_source_code() -> None:
    document = {
        "id": "b1",
        "status": "delivery_failed",
        "reason": "system failure; code: 34",
        "failure": {"code": 15001, "source": {"name": "sms-messagebird", "code": "34"}},
    }
    receipt = one(as_json("messagebird", document))
    assert receipt.error_code == "34"
    assert receipt.permanent is False


def bird_channels(message: dict[str, Any]) -> ParsedReceipts:
    return as_json(
        "messagebird", {"service": "channels", "event": "sms.outbound", "payload": message}
    )


def test_bird_channels_webhook_delivered() -> None:
    message = {
        "id": "b2",
        "receiver": {
            "contacts": [{"identifierKey": "phonenumber", "identifierValue": "+31612345678"}]
        },
        "body": {"type": "text", "text": {"text": "Your code is 1234"}},
        "status": "delivered",
        "direction": "outgoing",
        "lastStatusAt": "2026-03-14T09:26:00.500Z",
    }
    parsed = bird_channels(message)
    receipt = one(parsed)
    assert receipt.carrier_message_id == "b2"
    assert receipt.status is ReceiptStatus.DELIVERED
    assert receipt.done_at == datetime(2026, 3, 14, 9, 26, 0, 500000, tzinfo=UTC)
    assert receipt.recipient == "+31612345678"
    assert b"Your code" not in parsed.redacted_body


def test_bird_channels_webhook_failures() -> None:
    failed = {
        "id": "b3",
        "status": "delivery_failed",
        "failure": {"code": 15005, "source": {"name": "sms-messagebird", "code": "1"}},
    }
    receipt = one(bird_channels(failed))
    assert receipt.status is ReceiptStatus.FAILED
    assert receipt.error_code == "1"
    assert receipt.permanent is True
    assert one(bird_channels({"id": "b4", "status": "sending_failed"})).final
    assert one(bird_channels({"id": "b5", "status": "accepted"})).status is ReceiptStatus.ENROUTE


def test_messagebird_buffered_enroute() -> None:
    receipt = one(form("messagebird", {"id": "mb1", "status": "buffered"}))
    assert receipt.status is ReceiptStatus.ENROUTE


# Shared rules


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("twilio", b"To=%2B1"),
        ("vonage", b'{"messageId":"x"}'),
        ("plivo", b"MessageUUID=x"),
        ("sinch", b'{"batch_id":"x","type":"recipient_delivery_report_sms"}'),
        ("messagebird", b"id=x"),
    ],
)
def test_missing_status_names_field(fmt: str, body: bytes) -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse_receipt(fmt, body, "", PROFILE)
    assert "status" in info.value.field.lower()


@pytest.mark.parametrize("fmt", ["sinch", "infobip", "aws"])
def test_json_formats_reject_non_json(fmt: str) -> None:
    with pytest.raises(ReceiptParseError) as info:
        parse_receipt(fmt, b"status=delivered", "application/json", PROFILE)
    assert info.value.field == "body"


@pytest.mark.parametrize("fmt", ["sinch", "infobip", "aws", "vonage"])
def test_json_array_top_level_rejected(fmt: str) -> None:
    with pytest.raises(ReceiptParseError):
        parse_receipt(fmt, b"[1, 2]", "application/json", PROFILE)


def test_vonage_messages_api_status_webhook() -> None:
    from ledger.receipts.model import CarrierProfile, ReceiptStatus
    from ledger.receipts.parse import parse_receipt

    body = (
        b'{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","to":"447700900123",'
        b'"from":"ACME","timestamp":"2026-03-14T09:26:00.000Z","status":"rejected",'
        b'"error":{"type":"https://developer.vonage.com/api-errors/messages#1320",'
        b'"title":"1320","detail":"Message failed"},"channel":"sms"}'
    )
    parsed = parse_receipt("vonage", body, "application/json", CarrierProfile(name="v"))
    (receipt,) = parsed.receipts
    assert receipt.status is ReceiptStatus.REJECTED
    assert receipt.final
    assert receipt.carrier_message_id == "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
    assert receipt.error_code == "1320"
    assert receipt.done_at is not None
    assert receipt.done_at.isoformat() == "2026-03-14T09:26:00+00:00"
