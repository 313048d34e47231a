"""Real-format callbacks of every provider, signed as the provider signs them."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

import jwt

from ledger.webhooks.messagebird import bird_signature
from ledger.webhooks.plivo import plivo_v2_signature, plivo_v3_signature
from ledger.webhooks.sinch import sinch_signature
from ledger.webhooks.twilio import twilio_signature
from ledger.webhooks.vonage import sms_signature
from tests.webhooks.conftest import PUBLIC

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
NUMBER = "447700900123"


@dataclass(frozen=True)
class Call:
    """One HTTP request a provider would send."""

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def tampered(self) -> Call:
        """The same request with the receipt's status changed after signing."""
        if self.method == "GET":
            return replace(self, path=self.path.replace("deliv", "DELIV"))
        return replace(self, body=self.body.replace(b"deliv", b"DELIV"))


@dataclass(frozen=True)
class Signed:
    """How to make a provider's callback for a carrier id."""

    connection: str
    new_secret: str
    old_secret: str
    make: Callable[..., Call]
    timestamped: bool = False
    signs_body: bool = True


def twilio(secret: str, carrier_id: str, now: float, nonce: str) -> Call:
    fields = [
        ("MessageSid", carrier_id),
        ("MessageStatus", "delivered"),
        ("To", f"+{NUMBER}"),
        ("AccountSid", "AC0123"),
        ("ApiVersion", "2010-04-01"),
    ]
    signature = twilio_signature(secret, f"{PUBLIC}/hooks/twilio-a", fields)
    headers = {"X-Twilio-Signature": signature, "Content-Type": FORM}
    return Call("POST", "/hooks/twilio-a", urlencode(fields).encode(), headers)


def twilio_json(
    secret: str, carrier_id: str, now: float, nonce: str, algorithm: str = "HMAC_SHA1"
) -> Call:
    """A status callback with a JSON body: the URL carries ``bodySHA256`` and alone is signed."""
    body = json.dumps(
        {
            "MessageSid": carrier_id,
            "MessageStatus": "delivered",
            "ErrorCode": None,
            "To": f"+{NUMBER}",
            "AccountSid": "AC0123",
            "ApiVersion": "2010-04-01",
        }
    ).encode()
    path = f"/hooks/twilio-a?{urlencode({'bodySHA256': hashlib.sha256(body).hexdigest()})}"
    signature = twilio_signature(secret, f"{PUBLIC}{path}", [], algorithm)
    headers = {"X-Twilio-Signature": signature, "Content-Type": JSON}
    if algorithm != "HMAC_SHA1":
        headers["X-Twilio-Webhooks-Signature-Settings"] = f"key=rule-1,algorithm={algorithm}"
    return Call("POST", path, body, headers)


def vonage_sms(secret: str, carrier_id: str, now: float, nonce: str) -> Call:
    fields = [
        ("messageId", carrier_id),
        ("status", "delivered"),
        ("err-code", "0"),
        ("msisdn", NUMBER),
        ("to", "ACME"),
        ("scts", "2501011200"),
        ("message-timestamp", "2025-01-01 12:00:00"),
        ("nonce", nonce),
        ("timestamp", str(int(now))),
    ]
    fields.append(("sig", sms_signature(fields, secret, "sha256").upper()))
    return Call("GET", f"/hooks/vonage-sms-a?{urlencode(fields)}")


def messages_status(carrier_id: str, status: str = "delivered", error_code: int = 0) -> bytes:
    """A Vonage Messages API message status body for an SMS."""
    document: dict[str, object] = {
        "message_uuid": carrier_id,
        "to": NUMBER,
        "from": "ACME",
        "timestamp": "2025-01-01T12:00:00.000Z",
        "status": status,
        "channel": "sms",
        "client_ref": "order-1",
        "usage": {"currency": "EUR", "price": "0.0333"},
        "destination": {"network_code": "23410"},
        "sms": {"count_total": "1"},
    }
    if error_code:
        document["error"] = {
            "type": f"https://developer.vonage.com/api-errors/messages#{error_code}",
            "title": error_code,
            "detail": "The message could not be delivered",
            "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
        }
    return json.dumps(document).encode()


def vonage_messages_call(secret: str, body: bytes, now: float, nonce: str) -> Call:
    """Sign a Messages API webhook body with a bearer JWT, as Vonage does."""
    claims = {
        "iat": int(now),
        "jti": nonce,
        "iss": "Vonage",
        "api_key": "abc123",
        "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    token = jwt.encode(claims, secret, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": JSON}
    return Call("POST", "/hooks/vonage-msg-a", body, headers)


def vonage_messages(secret: str, carrier_id: str, now: float, nonce: str) -> Call:
    return vonage_messages_call(secret, messages_status(carrier_id), now, nonce)


def plivo(secret: str, carrier_id: str, now: float, nonce: str) -> Call:
    fields = [("MessageUUID", carrier_id), ("Status", "delivered"), ("To", NUMBER)]
    url = f"{PUBLIC}/hooks/plivo-a"
    headers = {
        "X-Plivo-Signature-V2": plivo_v2_signature(secret, url, nonce),
        "X-Plivo-Signature-Ma-V2": plivo_v2_signature("main-account-token", url, nonce),
        "X-Plivo-Signature-V2-Nonce": nonce,
        "Content-Type": FORM,
    }
    return Call("POST", "/hooks/plivo-a", urlencode(fields).encode(), headers)


def plivo_v3(secret: str, carrier_id: str, now: float, nonce: str) -> Call:
    fields = [("MessageUUID", carrier_id), ("Status", "delivered"), ("To", NUMBER)]
    url = f"{PUBLIC}/hooks/plivo-a?ref=x1"
    signature = plivo_v3_signature(secret, "POST", url, nonce, fields)
    headers = {
        "X-Plivo-Signature-V3": f"c29tZS1vdGhlci1zaWduYXR1cmU=,{signature}",
        "X-Plivo-Signature-V3-Nonce": nonce,
        "Content-Type": FORM,
    }
    return Call("POST", "/hooks/plivo-a?ref=x1", urlencode(fields).encode(), headers)


def sinch(secret: str, carrier_id: str, now: float, nonce: str) -> Call:
    body = json.dumps(
        {
            "type": "recipient_delivery_report_sms",
            "batch_id": carrier_id,
            "recipient": NUMBER,
            "status": "Delivered",
            "code": 0,
            "at": "2025-01-01T12:00:00.000Z",
            "operator_status_at": "2025-01-01T12:00:00.000Z",
        }
    ).encode()
    stamp = str(int(now))
    headers = {
        "x-sinch-webhook-signature": sinch_signature(secret, body, nonce, stamp),
        "x-sinch-webhook-signature-nonce": nonce,
        "x-sinch-webhook-signature-timestamp": stamp,
        "x-sinch-webhook-signature-algorithm": "HmacSHA256",
        "Content-Type": JSON,
    }
    return Call("POST", "/hooks/sinch-a", body, headers)


def messagebird(secret: str, carrier_id: str, now: float, nonce: str) -> Call:
    query = urlencode(
        {
            "id": carrier_id,
            "reference": "r1",
            "recipient": NUMBER,
            "status": "delivered",
            "statusDatetime": "2025-01-01T12:00:00+00:00",
        }
    )
    claims = {
        "iss": "MessageBird",
        "nbf": int(now),
        "exp": int(now) + 60,
        "jti": nonce,
        "url_hash": hashlib.sha256(f"{PUBLIC}/hooks/mb-a?{query}".encode()).hexdigest(),
    }
    token = jwt.encode(claims, secret, algorithm="HS256")
    return Call("GET", f"/hooks/mb-a?{query}", headers={"MessageBird-Signature-JWT": token})


def bird(secret: str, carrier_id: str, now: float, nonce: str) -> Call:
    # A Channels webhook for an outgoing SMS: the message object under "payload".
    # The nonce fills the sender's reference, so calls with different nonces differ.
    message = {
        "id": carrier_id,
        "channelId": "614208aa-b153-4d5d-9989-2fddfc0ce4c3",
        "sender": {"connector": {"id": "86cc4dc0-3dc0-41b7-ac43-8ec829ead56f"}},
        "receiver": {
            "contacts": [
                {
                    "id": "32cf5eee-f940-422c-ab8c-5f753aad5efd",
                    "identifierKey": "phonenumber",
                    "identifierValue": f"+{NUMBER}",
                }
            ]
        },
        "body": {"type": "text", "text": {"text": "Your code is 1234"}},
        "reference": nonce,
        "parts": [{"platformReference": "e8077d803532c0b5937c639b60216938"}],
        "status": "delivered",
        "direction": "outgoing",
        "lastStatusAt": "2025-01-01T12:00:00.000Z",
        "createdAt": "2025-01-01T11:59:58.000Z",
        "updatedAt": "2025-01-01T12:00:00.000Z",
    }
    document = {"service": "channels", "event": "sms.outbound", "payload": message}
    body = json.dumps(document).encode()
    stamp = str(int(now))
    headers = {
        "messagebird-signature": bird_signature(secret, stamp, f"{PUBLIC}/hooks/bird-a", body),
        "messagebird-request-timestamp": stamp,
        "Content-Type": JSON,
    }
    return Call("POST", "/hooks/bird-a", body, headers)


def kannel(token: str, carrier_id: str, now: float, nonce: str) -> Call:
    query = urlencode({"type": "1", "fid": carrier_id, "reply": "id:x stat:deliv"})
    return Call("GET", f"/hooks/kannel-a/{token}?{query}")


def jasmin(token: str, carrier_id: str, now: float, nonce: str) -> Call:
    fields = {
        "id": "6a9c1d5e-0000-4000-8000-000000000001",
        "message_status": "DELIVRD",
        "level": "2",
        "id_smsc": carrier_id,
        "sub": "001",
        "dlvrd": "001",
        "subdate": "2501011200",
        "donedate": "2501011201",
        "err": "000",
        "text": "deliv",
    }
    headers = {"Content-Type": FORM}
    return Call("POST", f"/hooks/jasmin-a/{token}", urlencode(fields).encode(), headers)


def infobip(token: str, carrier_id: str, now: float, nonce: str) -> Call:
    report = {
        "messageId": carrier_id,
        "to": NUMBER,
        "status": {"id": 5, "groupId": 3, "groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
        "error": {"id": 0, "name": "NO_ERROR", "permanent": False},
        "doneAt": "2025-01-01T12:00:00.000+0000",
    }
    body = json.dumps({"results": [report]}).encode()
    return Call("POST", f"/hooks/infobip-a/{token}", body, {"Content-Type": JSON})


PROVIDERS = {
    "twilio": Signed("twilio-a", "twilio-new-token", "twilio-old-token", twilio),
    "vonage-sms": Signed("vonage-sms-a", "vonage-new", "vonage-old", vonage_sms, True),
    "vonage-messages": Signed(
        "vonage-msg-a",
        "vonage-jwt-new-0123456789abcdef0123",
        "vonage-jwt-old-0123456789abcdef0123",
        vonage_messages,
        True,
    ),
    "plivo": Signed("plivo-a", "plivo-new-token", "plivo-old-token", plivo, signs_body=False),
    "plivo-v3": Signed("plivo-a", "plivo-new-token", "plivo-old-token", plivo_v3),
    "sinch": Signed("sinch-a", "sinch-new", "sinch-old", sinch, True),
    "messagebird": Signed(
        "mb-a",
        "mb-new-signing-key-0123456789abcdef",
        "mb-old-signing-key-0123456789abcdef",
        messagebird,
        True,
    ),
    "bird": Signed("bird-a", "bird-new-key", "bird-old-key", bird, True),
    "kannel": Signed("kannel-a", "kannel-token-new", "kannel-token-old", kannel, signs_body=False),
    "jasmin": Signed("jasmin-a", "jasmin-token-new", "jasmin-token-old", jasmin, signs_body=False),
    "infobip": Signed(
        "infobip-a", "infobip-token-new", "infobip-token-old", infobip, signs_body=False
    ),
}


def make(
    name: str,
    carrier_id: str,
    *,
    secret: str | None = None,
    age: float = 0.0,
    nonce: str = "nonce-1",
) -> Call:
    """Return provider ``name``'s callback reporting ``carrier_id`` delivered."""
    signed = PROVIDERS[name]
    return signed.make(secret or signed.new_secret, carrier_id, time.time() - age, nonce)
