"""The HTTP response to each provider, for every way a callback can end.

* Success, only after the commit: 200 with an empty body, except Jasmin, which
  treats a callback as delivered only when the body is exactly ``ACK/Jasmin``.
* A body that cannot be parsed is kept in the unparsed table (encrypted, for
  the auditor) in the same transaction and then acknowledged like a success.
  A retry would resend the same bytes, which can never parse, and Jasmin,
  Vonage and Sinch would keep retrying for minutes to hours. Operators see
  these in the ``unparsed`` count and with ``ListUnparsedReceipts``.
* A missing signature gets 401, a wrong, stale or replayed one 403; nothing is
  recorded. Vonage Messages gets 503 for a missing token instead, because
  Vonage sends a signed retry after a 5xx.
* A transient failure (storage unavailable, timeout, a receipt naming a
  message the ledger does not know yet) gets 503 with ``Retry-After``, and a
  full commit queue 429; every provider retries those. No response is ever 404
  for a configured connection, because Jasmin drops a callback that got 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.webhooks.request import Rejection

__all__ = ["CallbackResponse", "rejection_response", "success_response"]


@dataclass(frozen=True)
class CallbackResponse:
    """An HTTP response: status, plain-text body and optional ``Retry-After`` seconds."""

    status: int
    body: str = ""
    retry_after: int | None = None


JASMIN_ACK = "ACK/Jasmin"


def success_response(provider: str) -> CallbackResponse:
    """Return the response that acknowledges a callback of ``provider``."""
    return CallbackResponse(200, JASMIN_ACK if provider == "jasmin" else "")


def rejection_response(provider: str, rejection: Rejection) -> CallbackResponse:
    """Return the response to a callback that failed authentication or was malformed."""
    if rejection is Rejection.MISSING_SIGNATURE:
        if provider == "vonage-messages":
            return CallbackResponse(503, "unsigned callback; send it again signed", retry_after=5)
        return CallbackResponse(401, "signature missing")
    if rejection is Rejection.MALFORMED:
        return CallbackResponse(400, "malformed callback")
    return CallbackResponse(403, "signature rejected")
