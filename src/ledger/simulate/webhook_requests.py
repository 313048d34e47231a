"""Simulated receipts as the HTTP callbacks their aggregators send.

A raw receipt payload of the simulator becomes the signed request that the
connection's provider would send to ``/hooks/<connection>``. Most providers
go through :func:`ledger.webhooks.signers.sign_callback`. This module signs
the two payload shapes that function does not build. Vonage SMS receipts sent
as a POST form or JSON carry ``sig`` and ``timestamp`` among the body's
fields. Legacy MessageBird reports sent as a JSON POST have a JWT that also
carries a ``payload_hash``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from urllib.parse import urlencode

import jwt
from yarl import URL

from ledger.receipts.model import WebhookProfile
from ledger.simulate.formats.base import CONTENT_FORM, CONTENT_JSON
from ledger.webhooks.request import form_pairs
from ledger.webhooks.signers import SignedCallback, sign_callback
from ledger.webhooks.vonage import sms_signature

__all__ = ["GET_PROVIDERS", "build_callback", "build_probe", "callback_url"]

GET_PROVIDERS = frozenset({"vonage-sms", "messagebird", "kannel"})
"""Providers that report a form payload without a content type as a GET query."""

_MESSAGEBIRD_TOKEN_SECONDS = 60


def build_callback(
    connection: str,
    webhook: WebhookProfile,
    body: bytes,
    content_type: str,
    metadata: Mapping[str, str],
    *,
    now: float | None = None,
) -> SignedCallback:
    """Build the request ``webhook.provider`` sends to report one receipt payload.

    Args:
        connection: The connection, the last segment of the route.
        webhook: The connection's webhook profile, with its public base URL.
        body: The payload as the simulator encoded it for ``RecordRawReceipt``.
        content_type: The payload's content type; empty for a query string.
        metadata: Receipt metadata; ``message_id`` travels in the query
            parameter ``webhook.message_id_param``.
        now: UNIX time of signing; the current time when None.

    Raises:
        ValueError: The profile has no public base URL or no secret.
    """
    base = _public_base(connection, webhook)
    now = time.time() if now is None else now
    provider = webhook.provider
    if not content_type and body.startswith(b"/"):
        # A GET payload recorded with the path it was sent to: keep the query.
        body = body.partition(b"?")[2]
    if not content_type and provider in GET_PROVIDERS:
        metadata = _without_duplicate_reference(webhook, body, metadata)
    if provider == "vonage-sms" and content_type in (CONTENT_FORM, CONTENT_JSON):
        return _vonage_post(connection, webhook, body, content_type, metadata, base, now)
    if provider == "messagebird" and content_type == CONTENT_JSON:
        return _messagebird_post(connection, webhook, body, metadata, base, now)
    return sign_callback(
        connection,
        webhook,
        body,
        content_type,
        public_base_url=base,
        metadata=metadata,
        now=now,
    )


def build_probe(
    connection: str, webhook: WebhookProfile, *, now: float | None = None
) -> SignedCallback:
    """Build a correctly signed callback without a receipt.

    The endpoint verifies it and then responds 400 "empty callback", so it
    tests the route, the secret and the public base URL without recording
    anything. A Vonage SMS probe is a POST with the signature in the query,
    because a signed GET would carry ``timestamp`` and ``sig`` as its receipt.

    Raises:
        ValueError: The profile has no public base URL or no secret.
    """
    base = _public_base(connection, webhook)
    now = time.time() if now is None else now
    if webhook.provider != "vonage-sms":
        return sign_callback(connection, webhook, b"", "", public_base_url=base, now=now)
    query = [("timestamp", str(int(now)))]
    query.append(("sig", _vonage_sig(webhook, query)))
    path = f"/hooks/{connection}?{urlencode(query)}"
    return SignedCallback("POST", path, b"", {"Content-Type": CONTENT_FORM})


def callback_url(webhook: WebhookProfile, callback: SignedCallback) -> URL:
    """Return the URL that ``callback`` goes to on the endpoint of ``webhook``."""
    base = (webhook.public_base_url or "").rstrip("/")
    # The signature covers the path's bytes, so yarl must not re-encode them.
    return URL(base + callback.path, encoded=True)


def _public_base(connection: str, webhook: WebhookProfile) -> str:
    if not webhook.public_base_url:
        raise ValueError(
            f"connection {connection!r} has no webhook.public_base_url; write the profiles "
            "again with `smsledger simulate --webhooks --write-connections FILE`"
        )
    if not webhook.secrets:
        raise ValueError(f"connection {connection!r} has no webhook secret to sign with")
    return webhook.public_base_url.rstrip("/")


def _without_duplicate_reference(
    webhook: WebhookProfile, query: bytes, metadata: Mapping[str, str]
) -> Mapping[str, str]:
    """Drop ``message_id`` when the query string already names it in the reference parameter.

    A Kannel ``dlr-url`` carries the sender's reference itself, and a second
    copy of the parameter would end up in the recorded receipt.
    """
    param = webhook.message_id_param
    if param and any(name == param for name, _ in form_pairs(query)):
        return {k: v for k, v in metadata.items() if k != "message_id"}
    return metadata


def _reference_query(webhook: WebhookProfile, metadata: Mapping[str, str]) -> list[tuple[str, str]]:
    message_id = metadata.get("message_id")
    if webhook.message_id_param and message_id:
        return [(webhook.message_id_param, message_id)]
    return []


def _vonage_sig(webhook: WebhookProfile, params: list[tuple[str, str]]) -> str:
    return sms_signature(params, webhook.secrets[0], webhook.signature_method or "md5hash")


def _vonage_post(
    connection: str,
    webhook: WebhookProfile,
    body: bytes,
    content_type: str,
    metadata: Mapping[str, str],
    base: str,
    now: float,
) -> SignedCallback:
    """Sign a Vonage SMS receipt sent as a POST: ``timestamp`` and ``sig`` join its fields."""
    query = _reference_query(webhook, metadata)
    stamp = ("timestamp", str(int(now)))
    if content_type == CONTENT_JSON:
        document = json.loads(body)
        fields = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in document.items()]
        document["timestamp"] = stamp[1]
        document["sig"] = _vonage_sig(webhook, [*query, *fields, stamp])
        signed = json.dumps(document).encode()
    else:
        pairs = [*form_pairs(body), stamp]
        pairs.append(("sig", _vonage_sig(webhook, [*query, *pairs])))
        signed = urlencode(pairs).encode("ascii")
    path = f"/hooks/{connection}" + (f"?{urlencode(query)}" if query else "")
    return SignedCallback("POST", path, signed, {"Content-Type": content_type})


def _messagebird_post(
    connection: str,
    webhook: WebhookProfile,
    body: bytes,
    metadata: Mapping[str, str],
    base: str,
    now: float,
) -> SignedCallback:
    """Sign a legacy MessageBird JSON report: the JWT covers the URL and the body."""
    query = _reference_query(webhook, metadata)
    path = f"/hooks/{connection}" + (f"?{urlencode(query)}" if query else "")
    claims = {
        "iss": "MessageBird",
        "nbf": int(now),
        "exp": int(now) + _MESSAGEBIRD_TOKEN_SECONDS,
        "jti": secrets.token_hex(12),
        "url_hash": hashlib.sha256((base + path).encode()).hexdigest(),
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    token = jwt.encode(claims, webhook.secrets[0], algorithm="HS256")
    headers = {"Content-Type": CONTENT_JSON, "MessageBird-Signature-JWT": token}
    return SignedCallback("POST", path, body, headers)
