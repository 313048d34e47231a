"""A callback as signature verifiers read it, and their verdicts."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

__all__ = ["Rejection", "Verified", "WebhookRequest", "form_pairs"]


@dataclass(frozen=True)
class WebhookRequest:
    """One callback as received, with the URL the provider signed.

    Attributes:
        method: HTTP method in upper case.
        url: The public URL the provider called: the configured public base
            URL, the route path and the query string exactly as received.
        query: Query parameters in received order.
        headers: Request headers; lookups are case-insensitive.
        body: The raw body.
        content_type: The media type without parameters, in lower case.
        now: Receipt time as a UNIX timestamp, for timestamp windows.
        token: The path segment after ``/hooks/<connection>/``, for
            providers authenticated by a URL token.
    """

    method: str
    url: str
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, str]
    body: bytes
    content_type: str
    now: float
    token: str | None = None

    def header(self, name: str) -> str | None:
        """Return a header's value, or None when it is missing or empty."""
        value = self.headers.get(name)
        return value if value else None

    def form(self) -> list[tuple[str, str]]:
        """Return the body's URL-encoded fields, or nothing when it is not a form."""
        if self.content_type != "application/x-www-form-urlencoded":
            return []
        return form_pairs(self.body)


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """Decode URL-encoded pairs, keeping blank values and repeated names."""
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


class Rejection(enum.Enum):
    """Reason a callback was rejected before anything was recorded."""

    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale_timestamp"
    REPLAY = "replayed_nonce"
    UNTRUSTED_CERTIFICATE = "untrusted_certificate"
    UNKNOWN_TOPIC = "unknown_topic"
    MALFORMED = "malformed_request"


@dataclass(frozen=True)
class Verified:
    """A callback whose signature holds.

    Attributes:
        replay_key: A value that must not be accepted twice with different
            bodies within the replay window (a nonce, a message id, or the
            signature itself); None when the scheme gives nothing to key on.
        kind: Provider-specific kind of callback; ``notification`` for a
            delivery receipt, or for SNS ``subscription`` and
            ``unsubscribe`` confirmations.
        subscribe_url: For an SNS subscription confirmation, the verified URL
            that confirms it.
        extra_metadata: Parser metadata the verifier derived from the request.
    """

    replay_key: str | None = None
    kind: str = "notification"
    subscribe_url: str | None = None
    extra_metadata: tuple[tuple[str, str], ...] = field(default=())
