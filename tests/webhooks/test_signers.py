"""Callbacks signed by ``sign_callback`` pass the endpoint's checks for every provider."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from yarl import URL

from ledger.domain.outcomes import Status
from ledger.webhooks.signers import sign_callback
from tests.webhooks.conftest import PUBLIC, Endpoint, prepare, receipt_events, status_of

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def form(**fields: str) -> bytes:
    return urlencode(fields).encode()


def payload(connection: str, carrier_id: str) -> tuple[bytes, str]:
    """Return a delivered receipt for ``carrier_id`` in the connection's format."""
    if connection == "twilio-a":
        return form(MessageSid=carrier_id, MessageStatus="delivered"), FORM
    if connection == "vonage-sms-a":
        return form(messageId=carrier_id, status="delivered", msisdn="447700900123"), FORM
    if connection == "vonage-msg-a":
        return json.dumps({"messageId": carrier_id, "status": "delivered"}).encode(), JSON
    if connection == "plivo-a":
        return form(MessageUUID=carrier_id, Status="delivered"), FORM
    if connection == "sinch-a":
        report = {
            "type": "recipient_delivery_report_sms",
            "batch_id": carrier_id,
            "recipient": "447700900123",
            "status": "Delivered",
            "code": 0,
        }
        return json.dumps(report).encode(), JSON
    if connection == "mb-a":
        return form(id=carrier_id, status="delivered"), FORM
    if connection == "bird-a":
        return json.dumps({"id": carrier_id, "status": "delivered"}).encode(), JSON
    if connection == "kannel-a":
        return form(type="1", fid=carrier_id), FORM
    if connection == "jasmin-a":
        return form(id="j-uuid", message_status="DELIVRD", level="2", id_smsc=carrier_id), FORM
    report = {"messageId": carrier_id, "status": {"id": 5, "name": "DELIVERED_TO_HANDSET"}}
    return json.dumps({"results": [report]}).encode(), JSON


CONNECTIONS = [
    "twilio-a",
    "vonage-sms-a",
    "vonage-msg-a",
    "plivo-a",
    "sinch-a",
    "mb-a",
    "bird-a",
    "kannel-a",
    "jasmin-a",
    "infobip-a",
]


async def post(
    endpoint: Endpoint, connection: str, body: bytes, content_type: str, **metadata: str
) -> int:
    webhook = endpoint.runtime.connections[connection].webhook
    assert webhook is not None
    signed = sign_callback(
        connection, webhook, body, content_type, public_base_url=PUBLIC, metadata=metadata
    )
    url = URL(endpoint.url + signed.path, encoded=True)
    async with endpoint.session.request(
        signed.method, url, data=signed.body or None, headers=signed.headers
    ) as response:
        return response.status


@pytest.mark.parametrize("connection", CONNECTIONS)
async def test_signed_callback_recorded(endpoint: Endpoint, connection: str) -> None:
    prepare(endpoint.runtime, "m-1", connection, "CARRIER-1")
    body, content_type = payload(connection, "CARRIER-1")
    assert await post(endpoint, connection, body, content_type) == 200
    assert status_of(endpoint.runtime, "m-1") is Status.DELIVERED
    assert receipt_events(endpoint.runtime, "m-1") == ["Delivered"]


async def test_signed_callback_carries_message_id(endpoint: Endpoint) -> None:
    prepare(endpoint.runtime, "m-ref", "jasmin-a", "J-REF")
    body = form(id="j-uuid", message_status="ESME_ROK", level="1")
    assert await post(endpoint, "jasmin-a", body, FORM, message_id="m-ref") == 200
    assert receipt_events(endpoint.runtime, "m-ref") == ["Accepted"]


def test_sns_cannot_be_signed(endpoint: Endpoint) -> None:
    webhook = endpoint.runtime.connections["sns-a"].webhook
    assert webhook is not None
    with pytest.raises(ValueError, match="Amazon"):
        sign_callback("sns-a", webhook, b"{}", JSON, public_base_url=PUBLIC)
