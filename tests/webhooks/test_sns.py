"""Amazon SNS callbacks, signed with a test certificate served by a local server."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from ledger.domain.outcomes import Status
from ledger.webhooks.sns import SNS_URL_POLICY, string_to_sign
from tests.webhooks.conftest import SNS_TOPIC, Endpoint, prepare, receipt_events, status_of


@dataclass
class AmazonDouble:
    """A local server standing in for Amazon: it serves the certificate and confirmations."""

    key: rsa.RSAPrivateKey
    url: str = ""
    certificate_requests: int = 0
    confirmations: list[str] = field(default_factory=list)
    certificate_status: int = 200

    @property
    def cert_url(self) -> str:
        return f"{self.url}/SimpleNotificationService-test.pem"

    def sign(self, message: dict[str, str], version: str = "2") -> dict[str, str]:
        message = {**message, "SignatureVersion": version, "SigningCertURL": self.cert_url}
        digest = hashes.SHA256() if version == "2" else hashes.SHA1()
        text = string_to_sign(message)
        assert text is not None
        signature = self.key.sign(text, padding.PKCS1v15(), digest)
        return {**message, "Signature": base64.b64encode(signature).decode()}


def make_certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
async def amazon() -> AsyncIterator[AmazonDouble]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = make_certificate(key)
    double = AmazonDouble(key)

    async def certificate(request: web.Request) -> web.Response:
        double.certificate_requests += 1
        return web.Response(status=double.certificate_status, body=pem)

    async def confirm(request: web.Request) -> web.Response:
        double.confirmations.append(request.query.get("Token", ""))
        return web.Response(text="<ConfirmSubscriptionResponse/>")

    app = web.Application()
    app.router.add_get("/SimpleNotificationService-test.pem", certificate)
    app.router.add_get("/confirm", confirm)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    double.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield double
    finally:
        await runner.cleanup()


def notification(carrier_id: str, *, topic: str = SNS_TOPIC, age: float = 0) -> dict[str, str]:
    event = {
        "eventType": "TEXT_DELIVERED",
        "eventVersion": "1.0",
        "eventTimestamp": int(time.time() * 1000),
        "isFinal": True,
        "originationPhoneNumber": "+12065550100",
        "destinationPhoneNumber": "+447700900123",
        "isoCountryCode": "GB",
        "messageId": carrier_id,
        "messageStatus": "DELIVERED",
        "messageStatusDescription": "Message has been accepted by phone",
        "totalMessageParts": 1,
    }
    sent = datetime.now(UTC) - timedelta(seconds=age)
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": json.dumps(event),
        "Timestamp": sent.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }


async def post(endpoint: Endpoint, message: dict[str, str]) -> int:
    headers = {
        "x-amz-sns-message-type": message["Type"],
        "Content-Type": "text/plain; charset=UTF-8",
    }
    async with endpoint.session.post(
        endpoint.hook("sns-a"), data=json.dumps(message).encode(), headers=headers
    ) as response:
        return response.status


@pytest.mark.parametrize("version", ["1", "2"])
async def test_sns_notification_recorded(
    endpoint: Endpoint, amazon: AmazonDouble, version: str
) -> None:
    prepare(endpoint.runtime, "m-sns", "sns-a", "aws-msg-1")
    assert await post(endpoint, amazon.sign(notification("aws-msg-1"), version)) == 200
    assert status_of(endpoint.runtime, "m-sns") is Status.DELIVERED


async def test_sns_certificate_cached(endpoint: Endpoint, amazon: AmazonDouble) -> None:
    for n in range(3):
        prepare(endpoint.runtime, f"m-{n}", "sns-a", f"aws-{n}")
        assert await post(endpoint, amazon.sign(notification(f"aws-{n}"))) == 200
    assert amazon.certificate_requests == 1


async def test_sns_tampered_rejected(endpoint: Endpoint, amazon: AmazonDouble) -> None:
    prepare(endpoint.runtime, "m-sns", "sns-a", "aws-msg-1")
    signed = amazon.sign(notification("aws-msg-1"))
    signed["Message"] = signed["Message"].replace("DELIVERED", "BLOCKED")
    assert await post(endpoint, signed) == 403
    assert receipt_events(endpoint.runtime, "m-sns") == []


async def test_sns_other_key_rejected(endpoint: Endpoint, amazon: AmazonDouble) -> None:
    prepare(endpoint.runtime, "m-sns", "sns-a", "aws-msg-1")
    forger = AmazonDouble(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    forger.url = amazon.url
    assert await post(endpoint, forger.sign(notification("aws-msg-1"))) == 403
    assert receipt_events(endpoint.runtime, "m-sns") == []


async def test_sns_untrusted_certificate_host_never_fetched(
    endpoint: Endpoint, amazon: AmazonDouble
) -> None:
    signed = amazon.sign(notification("aws-msg-1"))
    signed["SigningCertURL"] = signed["SigningCertURL"].replace("127.0.0.1", "localhost")
    assert await post(endpoint, signed) == 403
    assert amazon.certificate_requests == 0


async def test_sns_unknown_topic_rejected(endpoint: Endpoint, amazon: AmazonDouble) -> None:
    prepare(endpoint.runtime, "m-sns", "sns-a", "aws-msg-1")
    other = notification("aws-msg-1", topic="arn:aws:sns:eu-west-1:999999999999:other")
    assert await post(endpoint, amazon.sign(other)) == 403
    assert receipt_events(endpoint.runtime, "m-sns") == []


async def test_sns_stale_timestamp_rejected(endpoint: Endpoint, amazon: AmazonDouble) -> None:
    prepare(endpoint.runtime, "m-sns", "sns-a", "aws-msg-1")
    assert await post(endpoint, amazon.sign(notification("aws-msg-1", age=7200))) == 403
    assert receipt_events(endpoint.runtime, "m-sns") == []


async def test_sns_redelivery_appends_nothing(endpoint: Endpoint, amazon: AmazonDouble) -> None:
    prepare(endpoint.runtime, "m-sns", "sns-a", "aws-msg-1")
    signed = amazon.sign(notification("aws-msg-1"))
    assert await post(endpoint, signed) == 200
    assert await post(endpoint, signed) == 200
    assert receipt_events(endpoint.runtime, "m-sns") == ["Delivered"]


async def test_sns_certificate_unavailable_retried(
    endpoint: Endpoint, amazon: AmazonDouble
) -> None:
    amazon.certificate_status = 500
    assert await post(endpoint, amazon.sign(notification("aws-msg-1"))) == 503


def confirmation(amazon: AmazonDouble, subscribe_url: str) -> dict[str, str]:
    return amazon.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": "token-123",
            "TopicArn": SNS_TOPIC,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": subscribe_url,
            "Timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
    )


async def test_sns_subscription_confirmed(endpoint: Endpoint, amazon: AmazonDouble) -> None:
    message = confirmation(amazon, f"{amazon.url}/confirm?Action=ConfirmSubscription&Token=t1")
    assert await post(endpoint, message) == 200
    assert amazon.confirmations == ["t1"]
    assert endpoint.metrics.total("subscription_confirmed") == 1


async def test_sns_subscription_untrusted_url_not_followed(
    endpoint: Endpoint, amazon: AmazonDouble
) -> None:
    untrusted = amazon.url.replace("127.0.0.1", "localhost")
    message = confirmation(amazon, f"{untrusted}/confirm?Token=t2")
    assert await post(endpoint, message) == 403
    assert amazon.confirmations == []


async def test_sns_subscription_bad_signature_not_followed(
    endpoint: Endpoint, amazon: AmazonDouble
) -> None:
    message = confirmation(amazon, f"{amazon.url}/confirm?Token=t3")
    message["Token"] = "swapped"
    assert await post(endpoint, message) == 403
    assert amazon.confirmations == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", True),
        ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/cert.pem", False),
        ("https://evil.example/sns.us-east-1.amazonaws.com/cert.pem", False),
        ("https://sns.us-east-1.amazonaws.com@evil.example/cert.pem", False),
        ("https://user@sns.us-east-1.amazonaws.com/cert.pem", False),
        ("https://sns.us-east-1.amazonaws.com:8443/cert.pem", False),
        ("https://s3.amazonaws.com/cert.pem", False),
    ],
)
def test_sns_production_url_policy(url: str, allowed: bool) -> None:
    assert SNS_URL_POLICY.allows(url) is allowed
