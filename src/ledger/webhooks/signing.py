"""Primitives the verifiers share: HMACs, constant-time matching, time windows."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "FUTURE_SKEW_SECONDS",
    "b64_hmac",
    "is_fresh",
    "matches_any",
    "url_port_variants",
]

FUTURE_SKEW_SECONDS = 60.0
"""How far ahead of this server's clock a signed timestamp may be."""


def b64_hmac(secret: str, message: bytes, digest: str) -> str:
    """Return the base64 text of an HMAC keyed with the UTF-8 bytes of ``secret``.

    ``digest`` is a :mod:`hashlib` name such as ``sha256``.
    """
    mac = hmac.new(secret.encode("utf-8"), message, digest).digest()
    return base64.b64encode(mac).decode("ascii")


def matches_any(expected: Iterable[str], presented: Iterable[str]) -> bool:
    """Return True when any presented value equals any expected one.

    Every pair is compared with :func:`hmac.compare_digest`, so the time
    taken does not depend on where two values first differ.
    """
    wanted = [value.encode("utf-8") for value in expected]
    found = False
    for candidate in presented:
        given = candidate.strip().encode("utf-8")
        for value in wanted:
            found |= hmac.compare_digest(value, given)
    return found


def is_fresh(timestamp: float, now: float, max_age: float) -> bool:
    """Return True when ``timestamp`` is at most ``max_age`` seconds old and not in the future.

    A timestamp up to :data:`FUTURE_SKEW_SECONDS` ahead is accepted, because
    the provider's clock and this server's are never exactly in step.
    """
    return now - max_age <= timestamp <= now + FUTURE_SKEW_SECONDS


def url_port_variants(url: str) -> list[str]:
    """Return ``url`` without and with its scheme's default port.

    Twilio signs either form, because its own back end is inconsistent about
    including the port; its SDK (twilio 9.13) checks both.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.username is not None:
        return [url]
    default = 443 if parts.scheme == "https" else 80
    bare = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or default}"))
    return [bare, with_port] if bare != with_port else [bare]
