"""Vonage: signed JWTs (Messages API) and the ``sig`` parameter (SMS API).

Messages API callbacks carry ``Authorization: Bearer <JWT>``, HS256 with the
account's signature secret. Its ``payload_hash`` claim, the hex SHA-256 of the
raw body, is required whenever there is a body, and ``iat`` must be recent.
Vonage notes that after a rare internal error it may send a callback unsigned,
and that a 5xx response brings a signed retry, so a missing token gets 503
rather than 401.

SMS API callbacks carry ``sig`` among their parameters (query string, form or
JSON). Every other parameter, sorted by name and with ``&`` and ``=`` in
values replaced by ``_``, forms ``&name=value...``. The ``md5hash`` method is
the MD5 of that text followed by the secret; ``md5``, ``sha1``, ``sha256``
and ``sha512`` are HMACs keyed with the secret. The signed ``timestamp``
parameter (UNIX seconds) must be recent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

import jwt

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.signing import is_fresh, matches_any

__all__ = [
    "DEFAULT_MAX_AGE_SECONDS",
    "sms_signature",
    "sms_signature_params",
    "verify_vonage_messages",
    "verify_vonage_sms",
]

DEFAULT_MAX_AGE_SECONDS = 300


def sms_signature(params: Iterable[tuple[str, str]], secret: str, method: str) -> str:
    """Compute the SMS API ``sig`` of ``params`` (``sig`` itself is left out), lower-case hex.

    Raises:
        ValueError: ``method`` is not md5hash, md5, sha1, sha256 or sha512.
    """
    fields = {name: value for name, value in params if name != "sig"}
    text = "".join(
        f"&{name}={fields[name].replace('&', '_').replace('=', '_')}" for name in sorted(fields)
    ).encode("utf-8")
    if method == "md5hash":
        return hashlib.md5(text + secret.encode("utf-8"), usedforsecurity=False).hexdigest()
    if method not in ("md5", "sha1", "sha256", "sha512"):
        raise ValueError(f"unsupported Vonage signature method {method!r}")
    return hmac.new(secret.encode("utf-8"), text, method).hexdigest()


def sms_signature_params(request: WebhookRequest) -> list[tuple[str, str]]:
    """Return the parameters a Vonage SMS callback signs: query, form or JSON fields."""
    params = list(request.query)
    if request.method == "POST":
        if request.content_type == "application/json":
            try:
                document = json.loads(request.body)
            except (UnicodeDecodeError, ValueError):
                return params
            if isinstance(document, dict):
                params.extend(
                    (str(name), value if isinstance(value, str) else json.dumps(value))
                    for name, value in document.items()
                )
        else:
            params.extend(request.form())
    return params


def verify_vonage_sms(request: WebhookRequest, profile: WebhookProfile) -> Verified | Rejection:
    """Check an SMS API callback's ``sig`` and ``timestamp`` parameters."""
    params = sms_signature_params(request)
    fields = dict(params)
    signature = fields.get("sig")
    if not signature:
        return Rejection.MISSING_SIGNATURE
    method = profile.signature_method or "md5hash"
    expected = [sms_signature(params, secret, method) for secret in profile.secrets]
    if not matches_any(expected, [signature.lower()]):
        return Rejection.BAD_SIGNATURE
    try:
        signed_at = float(fields.get("timestamp", ""))
    except ValueError:
        return Rejection.MALFORMED
    if not is_fresh(signed_at, request.now, profile.max_age_seconds or DEFAULT_MAX_AGE_SECONDS):
        return Rejection.STALE
    return Verified(replay_key=f"vonage-sms:{signature.lower()}")


def verify_vonage_messages(
    request: WebhookRequest, profile: WebhookProfile
) -> Verified | Rejection:
    """Check a Messages API callback's bearer JWT, its payload hash and its age."""
    authorization = request.header("Authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Rejection.MISSING_SIGNATURE
    claims = None
    for secret in profile.secrets:
        try:
            claims = jwt.decode(
                token.strip(),
                secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError:
            return Rejection.MALFORMED
    if claims is None:
        return Rejection.BAD_SIGNATURE

    payload_hash = claims.get("payload_hash")
    if request.body or payload_hash is not None:
        actual = hashlib.sha256(request.body).hexdigest()
        if not isinstance(payload_hash, str) or not matches_any([actual], [payload_hash.lower()]):
            return Rejection.BAD_SIGNATURE

    issued = claims.get("iat")
    if not isinstance(issued, int | float):
        return Rejection.MALFORMED
    if not is_fresh(issued, request.now, profile.max_age_seconds or DEFAULT_MAX_AGE_SECONDS):
        return Rejection.STALE
    expires = claims.get("exp")
    if isinstance(expires, int | float) and request.now > expires:
        return Rejection.STALE
    jti = claims.get("jti")
    key = jti if isinstance(jti, str) and jti else token.strip().rsplit(".", 1)[-1]
    return Verified(replay_key=f"vonage-messages:{key}")
