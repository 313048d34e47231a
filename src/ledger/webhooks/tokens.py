"""Kannel, Jasmin and Infobip: a per-connection token in the callback URL.

These gateways sign nothing, so the callback URL given to them carries a
secret path segment: ``/hooks/<connection>/<token>``. Any of the profile's
``secrets`` is accepted, so a token can be rotated by adding the new one,
changing the gateway's URL, and then removing the old one.
"""

from __future__ import annotations

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.request import Rejection, Verified
from ledger.webhooks.signing import matches_any

__all__ = ["verify_token"]


def verify_token(token: str | None, profile: WebhookProfile) -> Verified | Rejection:
    """Check the token taken from the request path."""
    if not token:
        return Rejection.MISSING_SIGNATURE
    if not matches_any(profile.secrets, [token]):
        return Rejection.BAD_SIGNATURE
    return Verified()
