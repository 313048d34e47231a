r"""The simulator's webhook mode: aggregators report receipts to the ledger's HTTP endpoint.

The receipts of the format connections whose aggregators call a URL (see
:data:`WEBHOOK_PROVIDERS`) travel as signed callbacks to
``/hooks/<connection>`` instead of ``RecordRawReceipt`` calls. Submissions,
acceptances, SMPP and AWS receipts, and receipts that the script resends
with their request id, keep using gRPC.

Both sides need the same secrets, so the profiles are written once and read
by both the server and the simulator::

    smsledger simulate --webhooks --write-connections sim-hooks.toml
    SMSLEDGER_CONNECTIONS_FILE=sim-hooks.toml SMSLEDGER_WEBHOOK_ADDRESS=127.0.0.1:8080 \
        smsledger serve
    smsledger simulate --webhooks --connections-file sim-hooks.toml
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w

from ledger.receipts.model import WebhookProfile
from ledger.receipts.profiles import load_profiles
from ledger.simulate.connections import FORMAT_CONNECTIONS
from ledger.simulate.steps import MessagePlan, Receipt, Replay, Step
from ledger.simulate.webhook_requests import build_probe, callback_url
from ledger.simulate.webhook_sender import CallbackSender, CopyRates

__all__ = [
    "DEFAULT_WEBHOOK_ADDRESS",
    "REFERENCE_PARAM",
    "WEBHOOK_PROVIDERS",
    "WebhookEndpointError",
    "WebhookProfilesError",
    "WebhooksMode",
    "load_webhooks",
    "webhook_connections",
    "webhook_connections_toml",
    "without_request_ids",
    "write_webhook_connections",
]

WEBHOOK_PROVIDERS: Mapping[str, str] = {
    "twilio": "twilio",
    "vonage": "vonage-sms",
    "plivo": "plivo",
    "sinch": "sinch",
    "infobip": "infobip",
    "messagebird": "messagebird",
    "kannel": "kannel",
    "jasmin": "jasmin",
}
"""Format families whose receipts arrive over HTTP, and the provider that sends them.

SMPP routes keep gRPC, because their receipts arrive on an SMPP bind, and so
does AWS, because only Amazon's key can sign SNS messages.
"""

DEFAULT_WEBHOOK_ADDRESS = "127.0.0.1:8080"
"""The server's default ``SMSLEDGER_WEBHOOK_ADDRESS``."""

REFERENCE_PARAM = "ref"
"""Query parameter of the callback URL that names the message of a receipt without a carrier id."""

_PROBE_TIMEOUT_SECONDS = 10.0


class WebhookProfilesError(ValueError):
    """The connections file lacks the webhook profiles of the simulator, or names another tenant.

    Attributes:
        path: The connections file.
        problems: One line per connection that is missing or differs.
    """

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(
            f"{path} does not hold the simulator's webhook profiles: {'; '.join(problems)}. "
            "Write them with `smsledger simulate --webhooks --tenant TENANT "
            "--write-connections FILE` and start the server with SMSLEDGER_CONNECTIONS_FILE=FILE"
        )


class WebhookEndpointError(RuntimeError):
    """The server's webhook endpoint does not accept the simulator's signed callbacks.

    Attributes:
        problems: One line per connection whose probe failed.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the webhook endpoint does not accept the simulator's callbacks: "
            + "; ".join(problems)
            + ". Start the server with SMSLEDGER_CONNECTIONS_FILE naming the file that "
            "--connections-file names, and SMSLEDGER_WEBHOOK_ADDRESS set to the host and "
            "port of its public base URL"
        )


def webhook_connections() -> dict[str, str]:
    """Return the provider of each simulated connection whose receipts arrive over HTTP."""
    return {
        c.name: WEBHOOK_PROVIDERS[c.family]
        for c in FORMAT_CONNECTIONS
        if c.family in WEBHOOK_PROVIDERS
    }


def _webhook_table(
    provider: str, tenant: str, public_base_url: str, token: Callable[[], str]
) -> dict[str, Any]:
    table: dict[str, Any] = {
        "provider": provider,
        "tenant": tenant,
        "secrets": [token()],
        "public_base_url": public_base_url,
        "message_id_param": REFERENCE_PARAM,
    }
    if provider == "vonage-sms":
        table["signature_method"] = "sha256"
    return table


def webhook_connections_toml(
    tenant: str,
    address: str = DEFAULT_WEBHOOK_ADDRESS,
    token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
) -> str:
    """Return every format connection's profile, with webhook tables, as TOML.

    Args:
        tenant: Tenant of every receipt on the webhook routes.
        address: ``HOST:PORT`` of the server's webhook endpoint; the public
            base URL is ``http://HOST:PORT``.
        token: Returns a new secret; 32 random bytes, URL-safe base64, by default.
    """
    public_base_url = f"http://{address}"
    providers = webhook_connections()
    document: dict[str, Any] = {"connections": {}}
    for connection in FORMAT_CONNECTIONS:
        table = dict(connection.profile)
        provider = providers.get(connection.name)
        if provider is not None:
            table["webhook"] = _webhook_table(provider, tenant, public_base_url, token)
        document["connections"][connection.name] = table
    header = (
        "# Connection profiles of `smsledger simulate --webhooks`, with webhook secrets.\n"
        f"# Start the server with SMSLEDGER_CONNECTIONS_FILE naming this file and\n"
        f"# SMSLEDGER_WEBHOOK_ADDRESS={address}; run the simulator with\n"
        "# --webhooks --connections-file naming it too.\n\n"
    )
    return header + tomli_w.dumps(document)


def write_webhook_connections(path: Path, tenant: str, address: str) -> None:
    """Write :func:`webhook_connections_toml` to ``path``, readable by its owner only.

    Raises:
        OSError: The file cannot be written.
    """
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(webhook_connections_toml(tenant, address), encoding="utf-8")


def load_webhooks(path: Path, tenant: str) -> dict[str, WebhookProfile]:
    """Read the webhook profiles of the simulated connections from a connections file.

    Raises:
        OSError: The file cannot be read.
        ValueError: The file is not a valid connections file.
        WebhookProfilesError: A connection lacks its webhook table, or the
            table names another provider or tenant or no public base URL.
    """
    profiles = load_profiles(path)
    found: dict[str, WebhookProfile] = {}
    problems = []
    for name, provider in webhook_connections().items():
        profile = profiles.get(name)
        webhook = profile.webhook if profile is not None else None
        if webhook is None:
            problems.append(f"{name} has no webhook table")
        elif webhook.provider != provider:
            problems.append(f"{name} has provider {webhook.provider!r}, expected {provider!r}")
        elif webhook.tenant != tenant:
            problems.append(f"{name} has tenant {webhook.tenant!r}, the run uses {tenant!r}")
        elif not webhook.public_base_url:
            problems.append(f"{name} has no public_base_url")
        else:
            found[name] = webhook
    if problems:
        raise WebhookProfilesError(path, problems)
    return found


def _callback_step(step: Step, connections: Mapping[str, WebhookProfile]) -> bool:
    return isinstance(step, Receipt) and step.raw is not None and step.connection in connections


def without_request_ids(
    plans: Sequence[MessagePlan], connections: Mapping[str, WebhookProfile]
) -> list[MessagePlan]:
    """Drop the request id of raw receipts on ``connections`` that no later step resends.

    A callback has no field for a request id, so this turns such receipts
    into callbacks. A receipt that a :class:`Replay` step resends keeps its
    id and stays on gRPC.
    """
    rewritten = []
    for plan in plans:
        replayed = {step.index for step in plan.steps if isinstance(step, Replay)}
        steps = [
            replace(step, request_id="")
            if isinstance(step, Receipt) and _callback_step(step, connections) and i not in replayed
            else step
            for i, step in enumerate(plan.steps)
        ]
        rewritten.append(replace(plan, steps=tuple(steps)))
    return rewritten


@dataclass
class WebhooksMode:
    """A run whose aggregators deliver their receipts over HTTP.

    Attributes:
        seed: Seed of the choice of callbacks that arrive more than once.
        webhooks: Webhook profile of each connection whose receipts go over HTTP.
        rates: Shares of callbacks that arrive more than once.
        sender: Sends the callbacks during the run.
    """

    seed: int
    webhooks: dict[str, WebhookProfile]
    rates: CopyRates = field(default_factory=CopyRates)
    sender: CallbackSender = field(init=False)

    def __post_init__(self) -> None:
        self.sender = CallbackSender(self.webhooks, seed=self.seed, rates=self.rates)

    def rewrite(self, plans: list[MessagePlan]) -> list[MessagePlan]:
        """Turn the raw receipts on webhook connections into callbacks.

        See :func:`without_request_ids`.
        """
        return without_request_ids(plans, self.webhooks)

    async def check(self) -> None:
        """Send each connection a signed callback without a receipt, which must get 400.

        Raises:
            WebhookEndpointError: A route is missing, rejects the signature or
                cannot be reached.
        """
        timeout = aiohttp.ClientTimeout(total=_PROBE_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            found = await asyncio.gather(
                *(self._probe(session, name, webhook) for name, webhook in self.webhooks.items())
            )
        problems = [problem for problem in found if problem is not None]
        if problems:
            raise WebhookEndpointError(problems)

    async def _probe(
        self, session: aiohttp.ClientSession, name: str, webhook: WebhookProfile
    ) -> str | None:
        callback = build_probe(name, webhook)
        try:
            async with session.request(
                callback.method,
                callback_url(webhook, callback),
                data=callback.body or None,
                headers=callback.headers,
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            base = webhook.public_base_url
            return f"{name}: cannot reach {base}: {type(error).__name__}: {error}"
        if status == 400:
            return None
        if status in (401, 403):
            return f"{name}: signature rejected (HTTP {status}); the server holds other secrets"
        if status == 404:
            return f"{name}: no webhook route (HTTP 404); the server has no webhook table for it"
        return f"{name}: HTTP {status} where 400 was expected"

    def summary(self) -> str:
        """Describe what the sender did, in one paragraph for the console."""
        stats = self.sender.stats
        delivered = sum(stats.delivered.values())
        per_connection = ", ".join(f"{n} {c}" for n, c in stats.delivered.most_common())
        retried = ", ".join(
            f"{count} after {cause}" for cause, count in sorted(stats.retried.items())
        )
        return (
            f"{delivered} receipts delivered as signed callbacks ({per_connection}); "
            f"{stats.twins} sent twice at once, {stats.resends} resent after their 200, "
            f"{stats.duplicates} signed and delivered again; "
            f"{sum(stats.extra_duplicates.values())} copies reached the ledger as duplicates; "
            f"requests resent: {retried or 'none'}; "
            f"{sum(stats.failed.values())} failed"
        )
