"""The signature verifier of each provider."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from ledger.receipts.model import WebhookProfile
from ledger.webhooks.messagebird import verify_bird, verify_messagebird
from ledger.webhooks.plivo import verify_plivo
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.sinch import verify_sinch
from ledger.webhooks.sns import SnsVerifier
from ledger.webhooks.tokens import verify_token
from ledger.webhooks.twilio import verify_twilio
from ledger.webhooks.vonage import verify_vonage_messages, verify_vonage_sms

__all__ = ["SIGNS_URL", "TOKEN_PROVIDERS", "Verifier", "build_verifiers"]

Verifier = Callable[[WebhookRequest, WebhookProfile], Awaitable[Verified | Rejection]]

SyncVerifier = Callable[[WebhookRequest, WebhookProfile], Verified | Rejection]

TOKEN_PROVIDERS = frozenset({"kannel", "jasmin", "infobip"})
"""Providers that sign nothing and are authenticated by a token in the URL path."""

SIGNS_URL = frozenset({"twilio", "plivo", "messagebird", "bird"})
"""Providers whose signature covers the URL, so they need a public base URL."""

_SYNC: Mapping[str, SyncVerifier] = {
    "twilio": verify_twilio,
    "vonage-sms": verify_vonage_sms,
    "vonage-messages": verify_vonage_messages,
    "plivo": verify_plivo,
    "sinch": verify_sinch,
    "messagebird": verify_messagebird,
    "bird": verify_bird,
}


def _wrap(verify: SyncVerifier) -> Verifier:
    async def run(request: WebhookRequest, profile: WebhookProfile) -> Verified | Rejection:
        return verify(request, profile)

    return run


async def _verify_token(request: WebhookRequest, profile: WebhookProfile) -> Verified | Rejection:
    return verify_token(request.token, profile)


def build_verifiers(sns: SnsVerifier) -> dict[str, Verifier]:
    """Return the verifier of every provider, SNS using ``sns``'s certificate cache."""
    verifiers = {name: _wrap(verify) for name, verify in _SYNC.items()}
    verifiers["sns"] = sns.verify
    for name in TOKEN_PROVIDERS:
        verifiers[name] = _verify_token
    return verifiers
