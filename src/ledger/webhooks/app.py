"""The HTTP endpoint for aggregator callbacks, on the event loop of the gRPC server.

Every connection whose profile has a ``webhook`` table gets
``/hooks/<connection>`` (and ``/hooks/<connection>/<token>`` for providers
authenticated by a URL token), for GET and POST. A callback is

1. rate-limited per connection (429) and size-limited (413);
2. authenticated with its provider's scheme, against the public URL from
   configuration, never the Host header (401/403, nothing recorded);
3. checked against recent nonces, so a replay with another body is refused;
4. recorded as a :class:`RecordRawReceipt` through the shared
   :class:`GroupCommitter`, so it joins the group commit of gRPC commands;
5. acknowledged with the provider's success response only after that commit.

The whole request is bounded by ``SMSLEDGER_WEBHOOK_REQUEST_TIMEOUT_SECONDS``
(503 when it runs out). A commit that was already under way when the timeout
fired may still succeed. The provider's retry is then a duplicate, which the
ledger recognizes and does not record again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from ledger.application.commands import RecordRawReceipt
from ledger.application.committer import GroupCommitter
from ledger.application.results import CommandResult, Disposition
from ledger.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    LedgerError,
    NotFoundError,
    ReceiptParseError,
    ResourceExhaustedError,
    UnavailableError,
)
from ledger.receipts.model import CarrierProfile, WebhookProfile
from ledger.settings import ConfigurationError, Settings
from ledger.webhooks.limits import TokenBucket
from ledger.webhooks.metrics import WebhookMetrics
from ledger.webhooks.replay import Claim, ReplayCache
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.responses import CallbackResponse, rejection_response, success_response
from ledger.webhooks.sns import CertificateUnavailableError
from ledger.webhooks.verifiers import SIGNS_URL, Verifier

__all__ = ["Route", "WebhookHandler", "build_routes"]

logger = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
_NO_BASE_URL = "http://localhost"


@dataclass
class Route:
    """One connection's callback route.

    Attributes:
        connection: The connection name, the last segment of the route.
        webhook: The connection's webhook profile.
        url: The public URL of ``/hooks/<connection>``, without query string.
        bucket: The connection's rate limit.
    """

    connection: str
    webhook: WebhookProfile
    url: str
    bucket: TokenBucket


def build_routes(connections: Mapping[str, CarrierProfile], settings: Settings) -> dict[str, Route]:
    """Return a route for every connection with a webhook profile.

    Raises:
        ConfigurationError: A provider that signs the URL has no public base URL.
    """
    routes = {}
    for name, profile in sorted(connections.items()):
        webhook = profile.webhook
        if webhook is None:
            continue
        base = webhook.public_base_url or settings.webhook_public_base_url.rstrip("/")
        if not base:
            if webhook.provider in SIGNS_URL:
                raise ConfigurationError(
                    f"connection {name!r}: provider {webhook.provider!r} signs the callback URL, "
                    "so set webhook.public_base_url in its profile or "
                    "SMSLEDGER_WEBHOOK_PUBLIC_BASE_URL to the URL the provider calls, such as "
                    "https://hooks.example.com"
                )
            base = _NO_BASE_URL
        routes[name] = Route(
            connection=name,
            webhook=webhook,
            url=f"{base}/hooks/{name}",
            bucket=TokenBucket(settings.webhook_rate_per_second, settings.webhook_burst),
        )
    return routes


@dataclass
class _Context:
    """State of one callback through the steps of :meth:`WebhookHandler.handle`."""

    route: Route
    request: WebhookRequest
    deadline: float
    recorded: bool = False


@dataclass
class WebhookHandler:
    """Authenticates and records callbacks; one instance serves every route.

    Attributes:
        routes: Routes by connection name.
        committer: The group commit shared with the gRPC server.
        verifiers: Signature verifier of each provider.
        metrics: Counts of callbacks by connection and outcome.
        replay: Recently seen nonces.
        max_body_bytes: Largest body accepted.
        timeout_seconds: Time one callback may take.
        confirm: Fetches an SNS ``SubscribeURL``; returns the HTTP status.
        clock: Returns the current UNIX time.
    """

    routes: Mapping[str, Route]
    committer: GroupCommitter
    verifiers: Mapping[str, Verifier]
    metrics: WebhookMetrics
    replay: ReplayCache
    max_body_bytes: int
    timeout_seconds: float
    confirm: Callable[[str], Awaitable[int]]
    clock: Callable[[], float] = time.time
    _loop_time: Callable[[], float] = field(default=time.monotonic, repr=False)

    async def handle(self, request: web.Request) -> web.Response:
        """Respond to one callback request."""
        connection = request.match_info.get("connection", "")
        route = self.routes.get(connection)
        if route is None:
            return web.Response(status=404, text="no webhook is configured for this connection")
        if (request.content_length or 0) > self.max_body_bytes:
            self.metrics.count(connection, "too_large")
            return _http_response(
                CallbackResponse(413, f"body larger than {self.max_body_bytes} bytes")
            )
        try:
            async with asyncio.timeout(self.timeout_seconds):
                response = await self._process(request, route)
        except TimeoutError:
            self.metrics.count(connection, "timed_out")
            self.metrics.log(
                logger,
                logging.WARNING,
                "callback timed out before it was recorded; responded 503",
                connection,
                "timed_out",
            )
            response = CallbackResponse(503, "timed out; retry", retry_after=1)
        return _http_response(response)

    async def _process(self, request: web.Request, route: Route) -> CallbackResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.metrics.count(route.connection, "too_large")
            return CallbackResponse(413, f"body larger than {self.max_body_bytes} bytes")
        # The query string exactly as sent: signatures cover its bytes, and
        # yarl's parsed URL would normalize its percent-encoding.
        raw_query = request.raw_path.partition("?")[2]
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        webhook_request = WebhookRequest(
            method=request.method.upper(),
            url=route.url + (f"?{raw_query}" if raw_query else ""),
            query=list(request.rel_url.query.items()),
            headers=request.headers,
            body=body,
            content_type=content_type,
            now=self.clock(),
            token=request.match_info.get("token"),
        )
        context = _Context(route, webhook_request, self._loop_time() + self.timeout_seconds)
        verdict = await self._verify(context)
        if isinstance(verdict, CallbackResponse):
            return verdict
        # Only authenticated callbacks spend the connection's budget: charged
        # before the check, a flood of forged requests would get the
        # provider's genuine callbacks refused.
        wait = route.bucket.take()
        if wait:
            self.metrics.count(route.connection, "rate_limited")
            return CallbackResponse(429, "rate limit exceeded", retry_after=math.ceil(wait))
        return await self._record_once(context, verdict, request.headers.get("Content-Type", ""))

    async def _verify(self, context: _Context) -> Verified | CallbackResponse:
        route = context.route
        provider = route.webhook.provider
        try:
            verdict = await self.verifiers[provider](context.request, route.webhook)
        except CertificateUnavailableError as error:
            self.metrics.count(route.connection, "unavailable")
            self.metrics.log(
                logger,
                logging.WARNING,
                f"signing certificate unavailable: {error}",
                route.connection,
                "unavailable",
            )
            return CallbackResponse(503, "signing certificate unavailable; retry", retry_after=5)
        if isinstance(verdict, Rejection):
            outcome = "rejected_request" if verdict is Rejection.MALFORMED else "rejected_signature"
            self.metrics.count(route.connection, outcome)
            self.metrics.log(
                logger,
                logging.WARNING,
                f"callback rejected: {verdict.value}",
                route.connection,
                outcome,
                provider=provider,
                reason=verdict.value,
            )
            return rejection_response(provider, verdict)
        return verdict

    async def _record_once(
        self, context: _Context, verdict: Verified, content_type: str
    ) -> CallbackResponse:
        route = context.route
        claimed_key = None
        if verdict.replay_key is not None:
            claim = self.replay.claim(
                verdict.replay_key, hashlib.sha256(context.request.body).digest()
            )
            if claim is Claim.CONFLICT:
                self.metrics.count(route.connection, "replayed")
                self.metrics.count(route.connection, "rejected_signature")
                self.metrics.log(
                    logger,
                    logging.WARNING,
                    "callback rejected: nonce replayed with another body",
                    route.connection,
                    "replayed",
                    provider=route.webhook.provider,
                )
                return rejection_response(route.webhook.provider, Rejection.REPLAY)
            if claim is Claim.RECORDED:
                self.metrics.count(route.connection, "duplicate")
                return success_response(route.webhook.provider)
            if claim is Claim.IN_FLIGHT:
                return CallbackResponse(
                    503, "the same callback is being recorded; retry", retry_after=1
                )
            claimed_key = verdict.replay_key
        try:
            if verdict.kind == "subscription":
                return await self._confirm_subscription(context, verdict)
            if verdict.kind == "unsubscribe":
                logger.info(
                    "SNS unsubscribe confirmation received", extra={"connection": route.connection}
                )
                context.recorded = True
                return success_response(route.webhook.provider)
            return await self._record(context, content_type)
        finally:
            if claimed_key is not None:
                if context.recorded:
                    self.replay.complete(claimed_key)
                else:
                    self.replay.release(claimed_key)

    async def _confirm_subscription(self, context: _Context, verdict: Verified) -> CallbackResponse:
        connection = context.route.connection
        assert verdict.subscribe_url is not None
        try:
            status = await self.confirm(verdict.subscribe_url)
        except (aiohttp.ClientError, TimeoutError) as error:
            status = 0
            logger.warning(
                "SNS subscription confirmation failed: %s", error, extra={"connection": connection}
            )
        if not 200 <= status < 300:
            self.metrics.count(connection, "unavailable")
            return CallbackResponse(503, "subscription confirmation failed; retry", retry_after=5)
        self.metrics.count(connection, "subscription_confirmed")
        logger.info("SNS subscription confirmed", extra={"connection": connection})
        context.recorded = True
        return success_response(context.route.webhook.provider)

    def _command(self, context: _Context, content_type: str) -> RecordRawReceipt:
        request = context.request
        webhook = context.route.webhook
        metadata = list(webhook.metadata.items())
        if webhook.message_id_param:
            value = next((v for k, v in request.query if k == webhook.message_id_param), "")
            if value:
                metadata.append(("message_id", value))
        body = request.body
        if request.method == "GET":
            # A GET callback's receipt is its query string.
            body = request.url.partition("?")[2].encode("utf-8")
            content_type = FORM
        return RecordRawReceipt(
            tenant=webhook.tenant,
            connection=context.route.connection,
            body=body,
            content_type=content_type,
            format=webhook.format,
            metadata=tuple(metadata),
            source=f"webhook:{webhook.provider}",
        )

    async def _record(self, context: _Context, content_type: str) -> CallbackResponse:
        connection = context.route.connection
        command = self._command(context, content_type)
        if not command.body:
            self.metrics.count(connection, "rejected_request")
            return CallbackResponse(400, "empty callback")
        remaining = max(context.deadline - self._loop_time(), 0.001)
        try:
            outcome = (await self.committer.execute([command], timeout=remaining))[0]
        except ResourceExhaustedError as error:
            self.metrics.count(connection, "rate_limited")
            return CallbackResponse(
                429, "ledger busy; retry", math.ceil(error.retry_after_seconds or 1)
            )
        except LedgerError as error:
            outcome = error
        return self._respond(context, outcome)

    def _respond(self, context: _Context, outcome: CommandResult | LedgerError) -> CallbackResponse:
        connection = context.route.connection
        provider = context.route.webhook.provider
        if isinstance(outcome, CommandResult):
            context.recorded = True
            name = "recorded"
            if outcome.disposition is Disposition.DUPLICATE:
                name = "duplicate"
            elif outcome.disposition is Disposition.PARKED:
                name = "parked"
            self.metrics.count(connection, name)
            return success_response(provider)
        if isinstance(outcome, ReceiptParseError):
            context.recorded = True
            self.metrics.count(connection, "unparsed")
            self.metrics.log(
                logger,
                logging.WARNING,
                f"callback kept unparsed: {outcome.message}",
                connection,
                "unparsed",
            )
            return success_response(provider)
        if isinstance(outcome, UnavailableError | DeadlineExceededError | NotFoundError):
            self.metrics.count(connection, "unavailable")
            self.metrics.log(
                logger,
                logging.WARNING,
                "callback not recorded, responded 503 so that the provider retries: "
                + outcome.message,
                connection,
                "unavailable",
            )
            return CallbackResponse(503, "not recorded; retry", retry_after=5)
        self.metrics.count(connection, "not_recorded")
        hint = ""
        if isinstance(outcome, InvalidArgumentError):
            hint = "; check the connection's webhook profile (format, message_id_param)"
        self.metrics.log(
            logger,
            logging.ERROR,
            f"callback not recorded, responded 500: {outcome.message}{hint}",
            connection,
            "not_recorded",
        )
        return CallbackResponse(500, "not recorded")


def _http_response(response: CallbackResponse) -> web.Response:
    headers = {"Retry-After": str(response.retry_after)} if response.retry_after else None
    return web.Response(status=response.status, text=response.body, headers=headers)
