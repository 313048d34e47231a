r"""Amazon SNS HTTP(S) subscriptions: RSA signatures with Amazon's certificate.

An SNS message is a JSON document. Its ``Signature`` is RSA PKCS#1 v1.5 over
``name\nvalue\n`` for a fixed list of fields, with SHA-1 for
``SignatureVersion`` 1 and SHA-256 for 2. A notification signs ``Message``,
``MessageId``, ``Subject`` when present, ``Timestamp``, ``TopicArn`` and
``Type``; subscription messages sign ``SubscribeURL`` and ``Token`` as well. The
certificate is fetched from ``SigningCertURL`` only when that URL is HTTPS on
``sns.<region>.amazonaws.com`` (``.com.cn`` in China), and kept in a small
cache. ``TopicArn`` must be one the profile lists, and ``Timestamp`` must be
within ``max_age_seconds``: SNS keeps a message's timestamp across its
retries, which by the HTTP delivery policy last at most one hour.

A ``SubscriptionConfirmation`` is confirmed by a GET of its ``SubscribeURL``,
and only after its signature and that URL's host both passed the checks, so
the endpoint never fetches a URL an attacker chose.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.signing import is_fresh

__all__ = [
    "DEFAULT_MAX_AGE_SECONDS",
    "SNS_URL_POLICY",
    "CertificateUnavailableError",
    "SnsUrlPolicy",
    "SnsVerifier",
    "string_to_sign",
]

DEFAULT_MAX_AGE_SECONDS = 3900
"""One hour of SNS retries plus five minutes of clock skew and queueing."""

_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_KINDS = {
    "Notification": "notification",
    "SubscriptionConfirmation": "subscription",
    "UnsubscribeConfirmation": "unsubscribe",
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


@dataclass(frozen=True)
class SnsUrlPolicy:
    """Rule for the URLs that may serve signing certificates and confirm subscriptions.

    Attributes:
        schemes: Accepted URL schemes.
        host_pattern: Pattern the whole host name must match.
        allow_port: Whether a URL may name a port.
    """

    schemes: tuple[str, ...] = ("https",)
    host_pattern: re.Pattern[str] = field(
        default=re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
    )
    allow_port: bool = False

    def allows(self, url: str) -> bool:
        """Return True when ``url`` is on an allowed scheme, host and port."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        return (
            parts.scheme in self.schemes
            and parts.username is None
            and parts.password is None
            and self.host_pattern.fullmatch(parts.hostname or "") is not None
            and (self.allow_port or port is None)
        )


SNS_URL_POLICY = SnsUrlPolicy()
"""Amazon's hosts over HTTPS: the only policy production uses."""


class CertificateUnavailableError(Exception):
    """The signing certificate could not be fetched; the callback should be retried."""


def string_to_sign(message: dict[str, Any]) -> bytes | None:
    """Return the text SNS signed for ``message``, or None when a field is missing."""
    names = _NOTIFICATION_FIELDS if message.get("Type") == "Notification" else _SUBSCRIPTION_FIELDS
    parts = []
    for name in names:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            return None
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode("utf-8")


Fetch = Callable[[str], Awaitable[bytes]]
"""Returns the body of a GET of a URL, or raises :class:`CertificateUnavailableError`."""


class SnsVerifier:
    """Verifies SNS messages, fetching and caching signing certificates.

    Args:
        fetch: Downloads a certificate.
        policy: URLs allowed for certificates and subscription confirmation.
        cache_size: Certificates kept in memory.
    """

    def __init__(self, fetch: Fetch, policy: SnsUrlPolicy = SNS_URL_POLICY, cache_size: int = 64):
        self.policy = policy
        self._fetch = fetch
        self._cache: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._cache_size = cache_size

    async def certificate(self, url: str) -> x509.Certificate:
        """Return the certificate at ``url``, from the cache when present.

        Raises:
            CertificateUnavailableError: It could not be fetched or read.
        """
        cached = self._cache.get(url)
        if cached is not None:
            self._cache.move_to_end(url)
            return cached
        data = await self._fetch(url)
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError as error:
            raise CertificateUnavailableError(f"{url} is not a PEM certificate") from error
        self._cache[url] = certificate
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return certificate

    async def verify(
        self, request: WebhookRequest, profile: WebhookProfile
    ) -> Verified | Rejection:
        """Check an SNS message's signature, certificate, topic and age.

        Raises:
            CertificateUnavailableError: The certificate could not be fetched.
        """
        try:
            message = json.loads(request.body)
        except (UnicodeDecodeError, ValueError):
            return Rejection.MALFORMED
        if not isinstance(message, dict) or message.get("Type") not in _KINDS:
            return Rejection.MALFORMED
        header_type = request.header("x-amz-sns-message-type")
        if header_type is not None and header_type != message["Type"]:
            return Rejection.MALFORMED

        digest = _HASHES.get(str(message.get("SignatureVersion", "")))
        cert_url = message.get("SigningCertURL")
        signature_text = message.get("Signature")
        signed = string_to_sign(message)
        if digest is None or not isinstance(signature_text, str) or signed is None:
            return Rejection.MISSING_SIGNATURE
        if not isinstance(cert_url, str) or not self.policy.allows(cert_url):
            return Rejection.UNTRUSTED_CERTIFICATE
        try:
            signature = base64.b64decode(signature_text, validate=True)
        except (binascii.Error, ValueError):
            return Rejection.BAD_SIGNATURE

        certificate = await self.certificate(cert_url)
        now = datetime.fromtimestamp(request.now, certificate.not_valid_after_utc.tzinfo)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            return Rejection.UNTRUSTED_CERTIFICATE
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return Rejection.UNTRUSTED_CERTIFICATE
        try:
            key.verify(signature, signed, padding.PKCS1v15(), digest())
        except InvalidSignature:
            return Rejection.BAD_SIGNATURE

        if message["TopicArn"] not in profile.topic_arns:
            return Rejection.UNKNOWN_TOPIC
        try:
            sent_at = datetime.fromisoformat(message["Timestamp"]).timestamp()
        except ValueError:
            return Rejection.MALFORMED
        if not is_fresh(sent_at, request.now, profile.max_age_seconds or DEFAULT_MAX_AGE_SECONDS):
            return Rejection.STALE

        kind = _KINDS[message["Type"]]
        subscribe_url = None
        if kind == "subscription":
            subscribe_url = message["SubscribeURL"]
            if not self.policy.allows(subscribe_url):
                return Rejection.UNTRUSTED_CERTIFICATE
        return Verified(
            replay_key=f"sns:{message['MessageId']}", kind=kind, subscribe_url=subscribe_url
        )
