"""Twilio: ``X-Twilio-Signature`` over the URL and the sorted form parameters.

The signed text is the full URL Twilio requested, followed by every POST
parameter name and value, names sorted and each name's values sorted, with no
separators. Callbacks with a JSON body instead carry ``bodySHA256`` (hex
SHA-256 of the raw body) in the URL, and the signed text is the URL alone.
The HMAC is SHA-1 keyed with the account Auth Token, or SHA-256 keyed with a
SharedKey secret when ``X-Twilio-Webhooks-Signature-Settings`` names
``algorithm=HMAC_SHA256``. This follows ``twilio.request_validator`` of
twilio 9.13, including its check of the URL with and without the port.
Twilio signs no timestamp or nonce, so replays are left to the ledger's
duplicate detection.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.signing import b64_hmac, matches_any, url_port_variants

__all__ = ["signature_algorithm", "twilio_signature", "verify_twilio"]

_ALGORITHMS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}


def signature_algorithm(settings_header: str | None) -> str:
    """Return the algorithm named by ``X-Twilio-Webhooks-Signature-Settings``.

    A missing header, or one without ``algorithm=``, means HMAC_SHA1.
    """
    for part in (settings_header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


def twilio_signature(
    secret: str, url: str, params: list[tuple[str, str]], algorithm: str = "HMAC_SHA1"
) -> str:
    """Compute the signature Twilio sends for ``url`` and form ``params``.

    Raises:
        ValueError: ``algorithm`` is neither HMAC_SHA1 nor HMAC_SHA256.
    """
    digest = _ALGORITHMS.get(algorithm.upper())
    if digest is None:
        raise ValueError(f"unsupported Twilio signature algorithm {algorithm!r}")
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    text = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return b64_hmac(secret, text.encode("utf-8"), digest)


def verify_twilio(request: WebhookRequest, profile: WebhookProfile) -> Verified | Rejection:
    """Check a Twilio callback's signature against every configured secret."""
    signature = request.header("X-Twilio-Signature")
    if signature is None:
        return Rejection.MISSING_SIGNATURE
    algorithm = signature_algorithm(request.header("X-Twilio-Webhooks-Signature-Settings"))
    if algorithm not in _ALGORITHMS:
        return Rejection.BAD_SIGNATURE

    params = request.form()
    body_hash = parse_qs(urlsplit(request.url).query).get("bodySHA256")
    if body_hash:
        actual = hashlib.sha256(request.body).hexdigest()
        if not matches_any([actual], [body_hash[0].lower()]):
            return Rejection.BAD_SIGNATURE
        params = []

    expected = [
        twilio_signature(secret, url, params, algorithm)
        for url in url_port_variants(request.url)
        for secret in profile.secrets
    ]
    if not matches_any(expected, [signature]):
        return Rejection.BAD_SIGNATURE
    return Verified()
