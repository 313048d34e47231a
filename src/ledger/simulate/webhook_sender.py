"""Delivering simulated receipts to the webhook endpoint as aggregators do.

Every callback is signed as its provider signs it and sent to
``/hooks/<connection>``. On 429, 503 or a connection error the same signed
request is sent again after a backoff, and re-signed once it is older than
:data:`RESIGN_AFTER_SECONDS`. On top of that some callbacks arrive more than
once, as they do from real providers (see :class:`CopyRates`).

A copy that reaches the ledger is recorded there as a duplicate, which adds
one to the message's ``duplicate_count``. Whether it reaches the ledger
depends on the provider: the endpoint acknowledges the same nonce with the
same body without recording anything, so only a copy with a fresh nonce
(or of a provider without one) counts. :attr:`CallbackStats.extra_duplicates`
collects those counts for the ground truth.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType

import aiohttp
import grpc

from ledger.receipts.model import WebhookProfile
from ledger.simulate.formats.base import seeded_rng
from ledger.simulate.truth import ExpectedState
from ledger.simulate.webhook_requests import build_callback, callback_url
from ledger.v1 import ledger_pb2
from ledger.webhooks.signers import SignedCallback

__all__ = [
    "NONCE_PROVIDERS",
    "RESIGN_AFTER_SECONDS",
    "CallbackSender",
    "CallbackStats",
    "CopyRates",
    "with_copies",
]

logger = logging.getLogger(__name__)

NONCE_PROVIDERS = frozenset({"vonage-sms", "plivo", "sinch", "messagebird"})
"""Providers whose verified callbacks give the endpoint a replay key (a nonce,
a token id or, for Vonage SMS, the signature), so that the same signed
request sent again is acknowledged without reaching the ledger."""

RESIGN_AFTER_SECONDS = 30.0
"""Age after which a retried request is signed again; MessageBird tokens expire after 60 s."""

JASMIN_ACK = "ACK/Jasmin"

_RETRY_STATUSES = frozenset({429, 503})
_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_MAX_SECONDS = 2.0

# The gRPC status of a command whose callback got this final HTTP status.
_STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,
}


@dataclass(frozen=True)
class CopyRates:
    """Shares of callbacks that arrive more than once.

    Attributes:
        twin: Sent twice at once, as when a provider's timeout fires while
            the first request is still in flight.
        resend: The same signed request sent again after its 200, as when
            the provider did not get the response.
        duplicate: Signed and delivered again after its 200, as
            at-least-once delivery does.
    """

    twin: float = 0.01
    resend: float = 0.03
    duplicate: float = 0.02


@dataclass
class CallbackStats:
    """Counts of what the sender did.

    Attributes:
        delivered: Callbacks of the plan acknowledged with 200, by connection.
        twins: Callbacks sent twice at once.
        resends: Signed requests sent again after their 200.
        duplicates: Callbacks signed and delivered again after their 200.
        retried: Requests sent again, by cause: ``429``, ``503`` or ``connection``.
        failed: Callbacks that ended without a 200, by connection.
        extra_duplicates: Copies that reached the ledger, by message id.
    """

    delivered: Counter[str] = field(default_factory=Counter)
    twins: int = 0
    resends: int = 0
    duplicates: int = 0
    retried: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    extra_duplicates: Counter[str] = field(default_factory=Counter)


@dataclass
class _Request:
    """A signed callback and the time it was signed, for re-signing on late retries."""

    callback: SignedCallback
    signed_at: float


@dataclass(frozen=True)
class _Reply:
    """The final response to a callback; ``ok`` when it acknowledged the callback."""

    status: int
    text: str
    ok: bool = False


class CallbackSender:
    """Sends raw receipts on webhook connections as signed HTTP callbacks.

    Use it as an async context manager, which opens and closes its HTTP client.

    Args:
        webhooks: Webhook profile of each connection whose receipts go over HTTP.
        seed: Seed of the choice of callbacks that arrive more than once.
        rates: Shares of those callbacks.
        max_attempts: Requests per callback before it counts as failed.
        timeout_seconds: Bound on one request.
        max_connections: HTTP connections open at once.
    """

    def __init__(
        self,
        webhooks: Mapping[str, WebhookProfile],
        *,
        seed: int,
        rates: CopyRates | None = None,
        max_attempts: int = 12,
        timeout_seconds: float = 30.0,
        max_connections: int = 256,
    ) -> None:
        self.webhooks = dict(webhooks)
        self.seed = seed
        self.rates = rates or CopyRates()
        self.max_attempts = max_attempts
        self.timeout_seconds = timeout_seconds
        self.max_connections = max_connections
        self.stats = CallbackStats()
        self._session: aiohttp.ClientSession | None = None
        self._vonage_stamps: dict[bytes, int] = {}

    async def __aenter__(self) -> CallbackSender:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.max_connections),
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def handles(self, command: ledger_pb2.Command) -> bool:
        """Tell whether ``command`` is a raw receipt that travels as a callback.

        A receipt with a request id stays on gRPC, because a callback has no
        field for one. The webhook mode's plan rewrite keeps request ids only
        on receipts that a later step resends with theirs.
        """
        if command.WhichOneof("command") != "raw_receipt":
            return False
        raw = command.raw_receipt
        return raw.connection in self.webhooks and not raw.request_id

    async def send(
        self, command: ledger_pb2.Command, message_ids: Sequence[str]
    ) -> ledger_pb2.CommandResult:
        """Deliver the raw receipt of ``command`` and return the result as a command result.

        Args:
            command: A command that :meth:`handles`.
            message_ids: The messages whose receipts the payload carries (an
                Infobip payload can carry several).

        Returns:
            Status OK once the endpoint acknowledged the callback; otherwise
            the HTTP status as a gRPC status (UNAVAILABLE after the retries
            ran out). The receipt's disposition stays unspecified, because a
            provider's success response does not name it.
        """
        raw = command.raw_receipt
        connection = raw.connection
        webhook = self.webhooks[connection]

        def sign() -> _Request:
            return self._sign(connection, webhook, raw)

        request = sign()
        rng = seeded_rng(self.seed, "callback", connection, hashlib.sha256(raw.body).hexdigest())
        reaches_ledger = webhook.provider not in NONCE_PROVIDERS
        if rng.random() < self.rates.twin:
            self.stats.twins += 1
            replies = await asyncio.gather(
                self._deliver(connection, request, sign), self._deliver(connection, request, sign)
            )
            reply = next((r for r in replies if not r.ok), replies[0])
            if all(r.ok for r in replies):
                self._add_copies(message_ids, reaches_ledger)
            elif any(r.ok for r in replies):
                # One twin recorded the receipt, so sending it again would add a duplicate.
                return self._failed(connection, webhook, reply, retryable=False)
        else:
            reply = await self._deliver(connection, request, sign)
        if not reply.ok:
            return self._failed(connection, webhook, reply, retryable=True)
        self.stats.delivered[connection] += 1

        roll = rng.random()
        if roll < self.rates.resend:
            self.stats.resends += 1
            copy = await self._deliver(connection, request, sign)
            if not copy.ok:
                return self._failed(connection, webhook, copy, retryable=False)
            self._add_copies(message_ids, reaches_ledger)
        elif roll < self.rates.resend + self.rates.duplicate:
            self.stats.duplicates += 1
            copy = await self._deliver(connection, sign(), sign)
            if not copy.ok:
                return self._failed(connection, webhook, copy, retryable=False)
            self._add_copies(message_ids, True)
        return ledger_pb2.CommandResult()

    # ------------------------------------------------------------ helpers

    def _sign(
        self, connection: str, webhook: WebhookProfile, raw: ledger_pb2.RecordRawReceiptRequest
    ) -> _Request:
        now = time.time()
        if webhook.provider == "vonage-sms":
            # Vonage signs no nonce, so its replay key is the signature, which
            # covers the parameters and the timestamp in whole seconds. A new
            # delivery of the same body gets a later second than the last one,
            # so that the endpoint does not take it for the same request.
            key = hashlib.sha256(connection.encode() + b"\0" + raw.body).digest()
            last = self._vonage_stamps.get(key)
            if last is not None and int(now) <= last:
                now = float(last + 1)
            self._vonage_stamps[key] = int(now)
        callback = build_callback(
            connection, webhook, raw.body, raw.content_type, dict(raw.metadata), now=now
        )
        return _Request(callback, time.monotonic())

    async def _deliver(
        self, connection: str, request: _Request, sign: Callable[[], _Request]
    ) -> _Reply:
        """Send one callback until it gets a final status, backing off on 429, 503 and errors."""
        assert self._session is not None, "use the sender as an async context manager"
        webhook = self.webhooks[connection]
        reply = _Reply(0, "not sent")
        for attempt in range(self.max_attempts):
            if attempt and time.monotonic() - request.signed_at > RESIGN_AFTER_SECONDS:
                request = sign()
            callback = request.callback
            url = callback_url(webhook, callback)
            retry_after = 0.0
            try:
                async with self._session.request(
                    callback.method, url, data=callback.body or None, headers=callback.headers
                ) as response:
                    text = await response.text()
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    reply = _Reply(
                        response.status,
                        text,
                        _acknowledged(webhook.provider, response.status, text),
                    )
            except (aiohttp.ClientError, TimeoutError) as error:
                reply = _Reply(0, f"{type(error).__name__}: {error}")
            if reply.status and reply.status not in _RETRY_STATUSES:
                return reply
            if attempt == self.max_attempts - 1:
                break
            cause = str(reply.status) if reply.status else "connection"
            self.stats.retried[cause] += 1
            logger.debug(
                "callback not accepted (%s), sending it again",
                cause,
                extra={"connection": connection},
            )
            backoff = _BACKOFF_BASE_SECONDS * 2**attempt
            await asyncio.sleep(min(_BACKOFF_MAX_SECONDS, max(backoff, retry_after)))
        return reply

    def _add_copies(self, message_ids: Sequence[str], reaches_ledger: bool) -> None:
        if reaches_ledger:
            for message_id in message_ids:
                self.stats.extra_duplicates[message_id] += 1

    def _failed(
        self, connection: str, webhook: WebhookProfile, reply: _Reply, *, retryable: bool
    ) -> ledger_pb2.CommandResult:
        """Return the command result of a callback that ended without a 200.

        A callback whose retries ran out is UNAVAILABLE, so that the driver
        sends it again later. A failed copy is ABORTED, because its original
        was recorded and sending it again would record an unplanned duplicate.
        """
        self.stats.failed[connection] += 1
        if not reply.status or reply.status in _RETRY_STATUSES:
            code = grpc.StatusCode.UNAVAILABLE if retryable else grpc.StatusCode.ABORTED
        else:
            code = _STATUS_CODES.get(reply.status, grpc.StatusCode.INTERNAL)
        status = f"HTTP {reply.status}" if reply.status else "no response"
        if reply.status == 200:
            status += f" without the {JASMIN_ACK!r} body that Jasmin requires"
        # The route, never the path, because a token provider's path contains its secret.
        detail = f"callback to /hooks/{connection} ({webhook.provider}): {status}: {reply.text}"
        logger.warning("%s", detail, extra={"connection": connection})
        result = ledger_pb2.CommandResult()
        result.status.code = code.value[0]
        result.status.message = detail
        return result


def with_copies(
    expected: Mapping[str, ExpectedState], extra_duplicates: Mapping[str, int]
) -> dict[str, ExpectedState]:
    """Return the ground truth with the copies that reached the ledger counted as duplicates.

    Every copy follows its original at once, before the script's next step,
    so the ledger finds the same receipt already recorded (or parked) and
    counts the copy as a duplicate.
    """
    adjusted = dict(expected)
    for message_id, count in extra_duplicates.items():
        state = adjusted[message_id]
        adjusted[message_id] = replace(state, duplicate_count=state.duplicate_count + count)
    return adjusted


def _acknowledged(provider: str, status: int, text: str) -> bool:
    """Tell whether a response acknowledges the callback in the provider's terms."""
    if status != 200:
        return False
    return provider != "jasmin" or text.strip() == JASMIN_ACK


def _retry_after(value: str | None) -> float:
    try:
        return max(float(value), 0.0) if value else 0.0
    except ValueError:
        return 0.0
