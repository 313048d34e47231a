"""Plivo: signature V3 (URL, parameters and nonce) or V2 (URL and nonce).

V2, which Plivo's messaging callbacks carry, is the base64 HMAC-SHA256 of the
URL without query string followed by ``X-Plivo-Signature-V2-Nonce``, keyed
with the Auth Token. ``X-Plivo-Signature-Ma-V2`` is the same keyed with the
main account's token. V2 does not cover the body, so the nonce is bound to the
body in the replay cache: the same nonce with another body is refused.

V3 covers the URL with its query parameters sorted, the sorted POST
parameters and ``X-Plivo-Signature-V3-Nonce``; its header may list several
signatures separated by commas, one per active token. Both follow
``plivo.utils`` of plivo 4.63, with constant-time comparison added.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.signing import b64_hmac, matches_any

__all__ = ["plivo_v2_signature", "plivo_v3_signature", "verify_plivo"]


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def plivo_v2_signature(secret: str, url: str, nonce: str) -> str:
    """Compute a V2 signature: the URL's query string and fragment are not signed."""
    return b64_hmac(secret, (_base_url(url) + nonce).encode("utf-8"), "sha256")


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def plivo_v3_signature(
    secret: str, method: str, url: str, nonce: str, post_params: Sequence[tuple[str, str]] = ()
) -> str:
    """Compute a V3 signature for a GET or POST callback."""
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    query_text = "&".join(
        "&".join(f"{name}={value}" for value in sorted(query[name])) for name in sorted(query)
    )
    signed = _base_url(url)
    posted = _grouped(post_params) if method.upper() == "POST" else {}
    if query_text or posted:
        signed += "?" + query_text
    if query_text and posted:
        signed += "."
    signed += "".join(
        "".join(f"{name}{value}" for value in sorted(posted[name])) for name in sorted(posted)
    )
    return b64_hmac(secret, f"{signed}.{nonce}".encode(), "sha256")


def verify_plivo(request: WebhookRequest, profile: WebhookProfile) -> Verified | Rejection:
    """Check V3 when its headers are present, else V2."""
    v3 = request.header("X-Plivo-Signature-V3")
    v3_nonce = request.header("X-Plivo-Signature-V3-Nonce")
    if v3 is not None and v3_nonce is not None:
        expected = [
            plivo_v3_signature(secret, request.method, request.url, v3_nonce, request.form())
            for secret in profile.secrets
        ]
        if not matches_any(expected, v3.split(",")):
            return Rejection.BAD_SIGNATURE
        return Verified(replay_key=f"plivo-v3:{v3_nonce}")

    nonce = request.header("X-Plivo-Signature-V2-Nonce")
    presented = [
        value
        for value in (
            request.header("X-Plivo-Signature-V2"),
            request.header("X-Plivo-Signature-Ma-V2"),
        )
        if value is not None
    ]
    if nonce is None or not presented:
        return Rejection.MISSING_SIGNATURE
    expected = [plivo_v2_signature(secret, request.url, nonce) for secret in profile.secrets]
    if not matches_any(expected, presented):
        return Rejection.BAD_SIGNATURE
    return Verified(replay_key=f"plivo-v2:{nonce}")
