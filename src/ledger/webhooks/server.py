"""Running the webhook endpoint: beside the gRPC server, or as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from ledger.application.committer import GroupCommitter
from ledger.runtime import Runtime
from ledger.settings import ENV_PREFIX, ConfigurationError
from ledger.telemetry import Telemetry
from ledger.webhooks.app import WebhookHandler, build_routes
from ledger.webhooks.metrics import WebhookMetrics
from ledger.webhooks.replay import ReplayCache
from ledger.webhooks.sns import (
    SNS_URL_POLICY,
    CertificateUnavailableError,
    SnsUrlPolicy,
    SnsVerifier,
)
from ledger.webhooks.verifiers import build_verifiers

__all__ = [
    "MalformedRequestFilter",
    "WebhookServer",
    "create_webhook_server",
    "serve_webhooks",
    "split_address",
]

logger = logging.getLogger(__name__)

_FETCH_TIMEOUT_SECONDS = 5.0
_MAX_CERTIFICATE_BYTES = 65_536


class MalformedRequestFilter(logging.Filter):
    """Shortens aiohttp's report of a request it could not parse to one line.

    aiohttp responds 400 to such a request itself and logs the error with a
    traceback that quotes the start of the offending line: the URL path,
    which may contain a connection token, or a header value. The record keeps
    only the error class and status.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite records of unparsable requests and let every record through."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg = "rejected an HTTP request that could not be parsed: %s (status %s)"
            record.args = (type(error).__name__, error.code)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = None
            record.exc_text = None
        return True


_MALFORMED_REQUEST_FILTER = MalformedRequestFilter()


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into host and port.

    Raises:
        ValueError: The address has no valid port.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{address!r} is not an address: use HOST:PORT, such as 127.0.0.1:8080")
    return host.strip("[]"), int(port)


class WebhookServer:
    """The aiohttp server of the webhook endpoint and its HTTP client.

    Args:
        handler: Authenticates and records callbacks.
        address: ``host:port`` to listen on; port 0 picks a free port.
    """

    def __init__(self, handler: WebhookHandler, address: str) -> None:
        self.handler = handler
        self.host, self.port = split_address(address)
        # Wrap every route, such as the telemetry spans; add them before start().
        self.middlewares: list[Middleware] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def application(self) -> web.Application:
        """Return the aiohttp application with the callback and health routes."""
        app = web.Application(
            client_max_size=self.handler.max_body_bytes, middlewares=self.middlewares
        )
        for path in ("/hooks/{connection}", "/hooks/{connection}/{token}"):
            app.router.add_route("POST", path, self.handler.handle)
            app.router.add_route("GET", path, self.handler.handle)
        app.router.add_get("/healthz", _healthy)
        return app

    async def start(self) -> None:
        """Start listening on the running event loop.

        Raises:
            ConfigurationError: The address cannot be listened on, such as a
                port already in use; the message names the setting.
        """
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=_FETCH_TIMEOUT_SECONDS)
        )
        # Adding the same filter object twice is a no-op.
        logging.getLogger("aiohttp.server").addFilter(_MALFORMED_REQUEST_FILTER)
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as error:
            await self.stop()
            raise ConfigurationError(
                f"{ENV_PREFIX}WEBHOOK_ADDRESS={self.host}:{self.port}: cannot listen "
                f"({error.strerror or error}); pick a free port or stop what holds it"
            ) from error
        bound = self._runner.addresses
        if bound:
            self.port = int(bound[0][1])
        logger.info(
            "webhook endpoint listening",
            extra={"host": self.host, "port": self.port, "routes": len(self.handler.routes)},
        )

    async def stop(self) -> None:
        """Stop listening once in-flight callbacks have their responses, then close the client."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> bytes:
        """Return the body of a GET of a signing certificate URL.

        Raises:
            CertificateUnavailableError: The request failed or its status was not 200.
        """
        if self._session is None:
            raise CertificateUnavailableError("the webhook server is not running")
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise CertificateUnavailableError(
                        f"{url} returned HTTP {response.status}; expected 200"
                    )
                data = await response.content.read(_MAX_CERTIFICATE_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise CertificateUnavailableError(f"cannot fetch {url}: {error}") from error
        if len(data) > _MAX_CERTIFICATE_BYTES:
            raise CertificateUnavailableError(f"{url} is larger than a certificate")
        return data

    async def confirm(self, url: str) -> int:
        """GET an SNS ``SubscribeURL`` (redirects are not followed) and return the status."""
        if self._session is None:
            raise aiohttp.ClientError("the webhook server is not running")
        async with self._session.get(url, allow_redirects=False) as response:
            await response.read()
            return response.status


async def _healthy(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_webhook_server(
    runtime: Runtime,
    committer: GroupCommitter,
    address: str | None = None,
    *,
    metrics: WebhookMetrics | None = None,
    sns_policy: SnsUrlPolicy = SNS_URL_POLICY,
) -> WebhookServer | None:
    """Build the endpoint for ``runtime``'s connections; None when none has a webhook.

    Args:
        runtime: The ledger and its settings.
        committer: The group commit shared with the gRPC server.
        address: Overrides ``SMSLEDGER_WEBHOOK_ADDRESS``; an empty address disables
            the endpoint.
        metrics: Counters to update; a new set when None.
        sns_policy: Hosts allowed to serve SNS certificates; tests point it at a
            local server, production keeps Amazon's.

    Raises:
        ConfigurationError: A connection's webhook settings are incomplete.
    """
    settings = runtime.settings
    address = settings.webhook_address if address is None else address
    routes = build_routes(runtime.connections, settings)
    if not address or not routes:
        return None
    server: WebhookServer | None = None

    async def fetch(url: str) -> bytes:
        assert server is not None
        return await server.fetch(url)

    async def confirm(url: str) -> int:
        assert server is not None
        return await server.confirm(url)

    handler = WebhookHandler(
        routes=routes,
        committer=committer,
        verifiers=build_verifiers(SnsVerifier(fetch, sns_policy)),
        metrics=metrics or WebhookMetrics(),
        replay=ReplayCache(
            settings.webhook_replay_window_seconds, settings.webhook_replay_cache_size
        ),
        max_body_bytes=min(settings.webhook_max_body_bytes, settings.max_raw_payload_bytes),
        timeout_seconds=settings.webhook_request_timeout_seconds,
        confirm=confirm,
    )
    server = WebhookServer(handler, address)
    return server


async def serve_webhooks(runtime: Runtime, address: str | None = None) -> None:
    """Run only the webhook endpoint (with its own group commit) until SIGTERM or SIGINT.

    The process serves its metrics on ``SMSLEDGER_METRICS_ADDRESS`` and traces
    each callback and commit batch like the ledger server does.
    """
    settings = runtime.settings
    telemetry = Telemetry.from_settings(settings, "smsledger-webhooks")
    committer = GroupCommitter(
        runtime.ledger,
        max_batch=settings.commit_max_batch,
        max_queued=settings.commit_max_queued,
        on_batch=telemetry.metrics.record_batch,
        trace_context=telemetry.trace_context,
        around_batch=telemetry.around_batch,
    )
    server = create_webhook_server(runtime, committer, address)
    if server is None:
        raise SystemExit(
            "no connection has a webhook table, or SMSLEDGER_WEBHOOK_ADDRESS is empty; "
            "nothing to serve"
        )
    telemetry.watch_store(runtime.store)
    telemetry.watch_committer(committer)
    telemetry.watch_webhooks(server.handler.metrics)
    server.middlewares.append(telemetry.webhook_middleware(tuple(server.handler.routes)))
    await telemetry.start_process(settings.metrics_address)
    await committer.start()
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    with contextlib.suppress(asyncio.CancelledError):
        await stopping.wait()
    logger.info("webhook endpoint stopping")
    await server.stop()
    await committer.stop()
    runtime.close()
    await telemetry.close()
    logger.info("webhook endpoint stopped")
