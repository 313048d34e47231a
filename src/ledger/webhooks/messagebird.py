r"""MessageBird (legacy JWT) and Bird (HMAC with a timestamp header).

Legacy MessageBird sends ``MessageBird-Signature-JWT``: a JWT signed with the
signing key (HS256, HS384 or HS512) whose claims are ``iss`` =
``MessageBird``, ``nbf``, ``exp``, ``url_hash`` (hex SHA-256 of the full URL
as called, query string in received order) and, exactly when there is a
body, ``payload_hash`` (hex SHA-256 of the body). This follows
``messagebird.request_validator`` of the MessageBird Python SDK, including its
one second of leeway on ``nbf`` and ``exp``.

Bird sends ``messagebird-signature``, the base64 HMAC-SHA256 keyed with the
signing key of ``<timestamp>\n<url>\n<SHA-256 of the body, raw 32 bytes>``,
and ``messagebird-request-timestamp``.
"""

from __future__ import annotations

import hashlib

import jwt

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.signing import b64_hmac, is_fresh, matches_any

__all__ = [
    "DEFAULT_MAX_AGE_SECONDS",
    "bird_signature",
    "verify_bird",
    "verify_messagebird",
]

DEFAULT_MAX_AGE_SECONDS = 300
_LEEWAY_SECONDS = 1.0
_ALGORITHMS = ["HS256", "HS384", "HS512"]


def verify_messagebird(request: WebhookRequest, profile: WebhookProfile) -> Verified | Rejection:
    """Check a legacy MessageBird callback's signature JWT."""
    token = request.header("MessageBird-Signature-JWT")
    if token is None:
        return Rejection.MISSING_SIGNATURE
    claims = None
    for secret in profile.secrets:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=_ALGORITHMS,
                issuer="MessageBird",
                options={
                    "require": ["iss", "nbf", "exp", "url_hash"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError:
            return Rejection.MALFORMED
    if claims is None:
        return Rejection.BAD_SIGNATURE

    not_before, expires = claims["nbf"], claims["exp"]
    if not isinstance(not_before, int | float) or not isinstance(expires, int | float):
        return Rejection.MALFORMED
    if not not_before - _LEEWAY_SECONDS <= request.now <= expires + _LEEWAY_SECONDS:
        return Rejection.STALE

    url_hash = claims["url_hash"]
    expected_url = hashlib.sha256(request.url.encode("latin-1", "replace")).hexdigest()
    if not isinstance(url_hash, str) or not matches_any([expected_url], [url_hash]):
        return Rejection.BAD_SIGNATURE
    payload_hash = claims.get("payload_hash")
    if bool(request.body) != bool(payload_hash):
        return Rejection.BAD_SIGNATURE
    if request.body:
        actual = hashlib.sha256(request.body).hexdigest()
        if not isinstance(payload_hash, str) or not matches_any([actual], [payload_hash]):
            return Rejection.BAD_SIGNATURE
    jti = claims.get("jti")
    key = jti if isinstance(jti, str) and jti else token.rsplit(".", 1)[-1]
    return Verified(replay_key=f"messagebird:{key}")


def bird_signature(secret: str, timestamp: str, url: str, body: bytes) -> str:
    """Compute the ``messagebird-signature`` Bird sends."""
    message = f"{timestamp}\n{url}\n".encode() + hashlib.sha256(body).digest()
    return b64_hmac(secret, message, "sha256")


def verify_bird(request: WebhookRequest, profile: WebhookProfile) -> Verified | Rejection:
    """Check a Bird callback's HMAC and timestamp.

    NOTE: Bird's documentation does not say whether the timestamp is in
    seconds or milliseconds; values above 10^12 are read as milliseconds.
    """
    signature = request.header("messagebird-signature")
    timestamp = request.header("messagebird-request-timestamp")
    if signature is None or timestamp is None:
        return Rejection.MISSING_SIGNATURE
    expected = [bird_signature(s, timestamp, request.url, request.body) for s in profile.secrets]
    if not matches_any(expected, [signature]):
        return Rejection.BAD_SIGNATURE
    try:
        signed_at = float(timestamp)
    except ValueError:
        return Rejection.MALFORMED
    if signed_at > 1e12:
        signed_at /= 1000
    if not is_fresh(signed_at, request.now, profile.max_age_seconds or DEFAULT_MAX_AGE_SECONDS):
        return Rejection.STALE
    return Verified(replay_key=f"bird:{signature}")
