"""The sending side of each scheme: callbacks signed as the provider signs them.

Load generators, the simulator and tests use :func:`sign_callback` to turn a
raw receipt payload into the HTTP request its provider would send to
``/hooks/<connection>``. Amazon SNS is not covered, because only Amazon's
certificate can sign its messages.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import jwt

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.messagebird import bird_signature
from ledger.webhooks.plivo import plivo_v2_signature
from ledger.webhooks.request import form_pairs
from ledger.webhooks.sinch import sinch_signature
from ledger.webhooks.twilio import twilio_signature
from ledger.webhooks.vonage import sms_signature

__all__ = ["SignedCallback", "sign_callback"]

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class SignedCallback:
    """An HTTP request as a provider sends it.

    Attributes:
        method: ``GET`` or ``POST``.
        path: Path and query string, relative to the endpoint's root; send it
            without re-encoding, because the signature covers its bytes.
        body: The request body (empty for GET).
        headers: Headers, the content type and signature among them.
    """

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def sign_callback(
    connection: str,
    webhook: WebhookProfile,
    body: bytes,
    content_type: str,
    *,
    public_base_url: str,
    metadata: Mapping[str, str] | None = None,
    now: float | None = None,
    nonce: str | None = None,
    secret: str | None = None,
) -> SignedCallback:
    """Build the request ``webhook.provider`` sends to report ``body``.

    Args:
        connection: The connection, the last segment of the route.
        webhook: The connection's webhook profile.
        body: The receipt payload; for providers that call with GET (Vonage
            SMS, MessageBird, Kannel) a URL-encoded form that becomes the
            query string.
        content_type: The payload's content type.
        public_base_url: The public base URL the signature covers.
        metadata: Receipt metadata; ``message_id`` goes into the query
            parameter ``webhook.message_id_param`` when one is configured.
        now: UNIX time of signing; the current time when None.
        nonce: Nonce or token id; a random one when None.
        secret: Secret or URL token to sign with; the profile's first when None.

    Raises:
        ValueError: The provider is ``sns`` or the profile has no secret.
    """
    provider = webhook.provider
    if provider == "sns":
        raise ValueError("SNS messages can only be signed with Amazon's private key")
    if secret is None:
        if not webhook.secrets:
            raise ValueError(f"connection {connection!r} has no webhook secret to sign with")
        secret = webhook.secrets[0]
    now = time.time() if now is None else now
    nonce = nonce or secrets.token_hex(12)
    query: list[tuple[str, str]] = []
    message_id = (metadata or {}).get("message_id")
    if webhook.message_id_param and message_id:
        query.append((webhook.message_id_param, message_id))

    path = f"/hooks/{connection}"
    if provider in ("kannel", "jasmin", "infobip"):
        path += f"/{secret}"
    if provider in ("vonage-sms", "messagebird", "kannel"):
        query += form_pairs(body)
        body = b""
    if provider == "vonage-sms":
        query.append(("timestamp", str(int(now))))
        query.append(("sig", sms_signature(query, secret, webhook.signature_method or "md5hash")))
    if provider == "twilio" and "json" in content_type:
        query.append(("bodySHA256", hashlib.sha256(body).hexdigest()))

    if query:
        path += "?" + urlencode(query)
    url = public_base_url.rstrip("/") + path
    headers = {"Content-Type": content_type} if body else {}
    headers.update(_signature_headers(provider, secret, url, body, content_type, now, nonce))
    return SignedCallback("POST" if body else "GET", path, body, headers)


def _signature_headers(
    provider: str, secret: str, url: str, body: bytes, content_type: str, now: float, nonce: str
) -> dict[str, str]:
    stamp = str(int(now))
    if provider == "twilio":
        params = form_pairs(body) if content_type.startswith(FORM) else []
        return {"X-Twilio-Signature": twilio_signature(secret, url, params)}
    if provider == "vonage-messages":
        claims = {
            "iat": int(now),
            "jti": nonce,
            "payload_hash": hashlib.sha256(body).hexdigest(),
        }
        return {"Authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}
    if provider == "plivo":
        return {
            "X-Plivo-Signature-V2": plivo_v2_signature(secret, url, nonce),
            "X-Plivo-Signature-V2-Nonce": nonce,
        }
    if provider == "sinch":
        return {
            "x-sinch-webhook-signature": sinch_signature(secret, body, nonce, stamp),
            "x-sinch-webhook-signature-nonce": nonce,
            "x-sinch-webhook-signature-timestamp": stamp,
            "x-sinch-webhook-signature-algorithm": "HmacSHA256",
        }
    if provider == "messagebird":
        claims = {
            "iss": "MessageBird",
            "nbf": int(now),
            "exp": int(now) + 60,
            "jti": nonce,
            "url_hash": hashlib.sha256(url.encode()).hexdigest(),
        }
        if body:
            claims["payload_hash"] = hashlib.sha256(body).hexdigest()
        return {"MessageBird-Signature-JWT": jwt.encode(claims, secret, algorithm="HS256")}
    if provider == "bird":
        return {
            "messagebird-signature": bird_signature(secret, stamp, url, body),
            "messagebird-request-timestamp": stamp,
        }
    return {}
