"""Payloads no parser can read lose their message text before they are kept."""

from __future__ import annotations

import json

import pytest

from ledger.receipts.redaction import redact_unparsable


def test_smpp_text_loses_everything_after_text_key() -> None:
    body = b"id:AB12 sub:001 stat: err:000 text:Your code is 4711"
    assert redact_unparsable(body, "") == (
        b"id:AB12 sub:001 stat: err:000 text:[redacted]",
        ("text",),
    )


def test_binary_pdu_loses_everything_after_text_key() -> None:
    body = b"\x00\x00\x00\x40\x00\x00\x00\x05id:1 stat:?? text:secret\x00\x04\x27\x00\x01\x09"
    redacted, names = redact_unparsable(body, "application/octet-stream")
    assert b"secret" not in redacted
    assert redacted.endswith(b"text:[redacted]")
    assert names == ("text",)


def test_form_body_and_text_values() -> None:
    body = (
        b"MessageSid=SM1&Body=hello+there&reply=id%3A1+stat%3AXX+text%3Ahi+mum&To=%2B447700900123"
    )
    redacted, names = redact_unparsable(body, "application/x-www-form-urlencoded")
    assert b"hello" not in redacted
    assert b"mum" not in redacted
    assert b"MessageSid=SM1&" in redacted
    assert b"To=%2B447700900123" in redacted
    assert set(names) == {"Body", "reply.text"}


def test_json_body_members_and_text_keys() -> None:
    body = json.dumps(
        {"id": "x1", "message": "hello", "nested": [{"text": "hi"}], "dlr": "id:1 text:bye"}
    ).encode()
    redacted, names = redact_unparsable(body, "application/json")
    document = json.loads(redacted)
    assert document["id"] == "x1"
    assert document["message"] == "[redacted]"
    assert document["nested"][0]["text"] == "[redacted]"
    assert document["dlr"] == "id:1 text:[redacted]"
    assert set(names) == {"message", "text", "dlr.text"}


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xfe not a form", b"id:1 stat:DELIVRD", b"{broken json", b"a=1&b=2", b"[1, 2]"],
)
def test_payloads_without_text_stay_as_received(body: bytes) -> None:
    assert redact_unparsable(body, "") == (body, ())


def test_redacting_twice_changes_nothing_more() -> None:
    once = redact_unparsable(b"id:1 stat:X text:hello", "")
    assert redact_unparsable(once[0], "") == once


def test_form_body_field_with_text_key() -> None:
    body = b"text=id%3A1+text%3Ahi&message=secret&other=id%3A2+text%3Abye"
    redacted, names = redact_unparsable(body, "")
    assert (
        redacted == b"text=%5Bredacted%5D&message=%5Bredacted%5D&other=id%3A2+text%3A%5Bredacted%5D"
    )
    assert names == ("text", "message", "other.text")
