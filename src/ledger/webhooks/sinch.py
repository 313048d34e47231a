"""Sinch SMS delivery reports: HMAC over the body, a nonce and a timestamp.

``x-sinch-webhook-signature`` is the base64 HMAC-SHA256, keyed with the
callback secret, of ``<raw body>.<nonce>.<timestamp>`` taken from
``x-sinch-webhook-signature-nonce`` and ``x-sinch-webhook-signature-timestamp``
(UNIX seconds), as the Sinch SDKs compute it. The SDKs do not check the
timestamp's age; this verifier refuses timestamps older than the profile's
``max_age_seconds`` and nonces seen before with another body.
"""

from __future__ import annotations

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.signing import b64_hmac, is_fresh, matches_any

__all__ = ["DEFAULT_MAX_AGE_SECONDS", "sinch_signature", "verify_sinch"]

DEFAULT_MAX_AGE_SECONDS = 300


def sinch_signature(secret: str, body: bytes, nonce: str, timestamp: str) -> str:
    """Compute the signature Sinch sends for a body, nonce and timestamp."""
    return b64_hmac(secret, body + f".{nonce}.{timestamp}".encode(), "sha256")


def verify_sinch(request: WebhookRequest, profile: WebhookProfile) -> Verified | Rejection:
    """Check a Sinch callback's signature and timestamp."""
    signature = request.header("x-sinch-webhook-signature")
    nonce = request.header("x-sinch-webhook-signature-nonce")
    timestamp = request.header("x-sinch-webhook-signature-timestamp")
    if signature is None or nonce is None or timestamp is None:
        return Rejection.MISSING_SIGNATURE
    expected = [sinch_signature(s, request.body, nonce, timestamp) for s in profile.secrets]
    if not matches_any(expected, [signature]):
        return Rejection.BAD_SIGNATURE
    try:
        signed_at = float(timestamp)
    except ValueError:
        return Rejection.MALFORMED
    max_age = profile.max_age_seconds or DEFAULT_MAX_AGE_SECONDS
    if not is_fresh(signed_at, request.now, max_age):
        return Rejection.STALE
    return Verified(replay_key=f"sinch:{nonce}")
