"""Fixtures of the webhook tests: a ledger with webhook connections and a running endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from ledger.application.commands import RecordAcceptance, SubmitMessage
from ledger.application.committer import GroupCommitter
from ledger.application.results import CommandResult
from ledger.domain.outcomes import Status
from ledger.runtime import Runtime, build_runtime
from ledger.webhooks.metrics import WebhookMetrics
from ledger.webhooks.server import WebhookServer, create_webhook_server
from ledger.webhooks.sns import SnsUrlPolicy
from tests.conftest import make_settings

PUBLIC = "https://hooks.example.com"
TENANT = "acme"
SNS_TOPIC = "arn:aws:sns:eu-west-1:123456789012:sms-events"

CONNECTIONS = f"""
[connections.twilio-a]
stuck_after_seconds = 60
[connections.twilio-a.webhook]
provider = "twilio"
tenant = "{TENANT}"
secrets = ["twilio-new-token", "twilio-old-token"]

[connections.vonage-sms-a]
[connections.vonage-sms-a.webhook]
provider = "vonage-sms"
tenant = "{TENANT}"
signature_method = "sha256"
secrets = ["vonage-new", "vonage-old"]

[connections.vonage-md5-a]
[connections.vonage-md5-a.webhook]
provider = "vonage-sms"
tenant = "{TENANT}"
secrets = ["vonage-md5-secret"]

[connections.vonage-msg-a]
[connections.vonage-msg-a.webhook]
provider = "vonage-messages"
tenant = "{TENANT}"
secrets = ["vonage-jwt-new-0123456789abcdef0123", "vonage-jwt-old-0123456789abcdef0123"]

[connections.plivo-a]
[connections.plivo-a.webhook]
provider = "plivo"
tenant = "{TENANT}"
secrets = ["plivo-new-token", "plivo-old-token"]

[connections.sinch-a]
[connections.sinch-a.webhook]
provider = "sinch"
tenant = "{TENANT}"
secrets = ["sinch-new", "sinch-old"]

[connections.sns-a]
[connections.sns-a.webhook]
provider = "sns"
tenant = "{TENANT}"
topic_arns = ["{SNS_TOPIC}"]

[connections.mb-a]
[connections.mb-a.webhook]
provider = "messagebird"
tenant = "{TENANT}"
secrets = ["mb-new-signing-key-0123456789abcdef", "mb-old-signing-key-0123456789abcdef"]

[connections.bird-a]
[connections.bird-a.webhook]
provider = "bird"
tenant = "{TENANT}"
secrets = ["bird-new-key", "bird-old-key"]

[connections.kannel-a]
[connections.kannel-a.webhook]
provider = "kannel"
tenant = "{TENANT}"
secrets = ["kannel-token-new", "kannel-token-old"]
message_id_param = "ref"

[connections.jasmin-a]
[connections.jasmin-a.webhook]
provider = "jasmin"
tenant = "{TENANT}"
secrets = ["jasmin-token-new", "jasmin-token-old"]
message_id_param = "ref"

[connections.infobip-a]
[connections.infobip-a.webhook]
provider = "infobip"
tenant = "{TENANT}"
secrets = ["infobip-token-new", "infobip-token-old"]

[connections.smpp-a]
format = "smpp-text"
"""

LOCAL_SNS = SnsUrlPolicy(
    schemes=("http",), host_pattern=__import__("re").compile(r"127\.0\.0\.1"), allow_port=True
)
"""Lets tests serve SNS certificates from a local server; production keeps Amazon's hosts."""


def write_connections(tmp_path: Path, text: str = CONNECTIONS) -> Path:
    path = tmp_path / "connections.toml"
    path.write_text(text)
    return path


@pytest.fixture
def hook_runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A ledger on each backend with every webhook provider configured."""
    built = build_runtime(
        make_settings(
            database_url,
            tmp_path,
            connections_file=write_connections(tmp_path),
            webhook_public_base_url=PUBLIC,
            webhook_request_timeout_seconds=5.0,
        )
    )
    try:
        yield built
    finally:
        built.close()


@dataclass
class Endpoint:
    """A running webhook endpoint and what it writes to."""

    url: str
    runtime: Runtime
    server: WebhookServer
    committer: GroupCommitter
    metrics: WebhookMetrics
    session: aiohttp.ClientSession

    def hook(self, connection: str, suffix: str = "") -> str:
        """Return the local URL of a connection's route."""
        return f"{self.url}/hooks/{connection}{suffix}"


async def start_endpoint(
    runtime: Runtime,
) -> tuple[WebhookServer, GroupCommitter, WebhookMetrics]:
    committer = GroupCommitter(runtime.ledger)
    metrics = WebhookMetrics(log_interval_seconds=0)
    server = create_webhook_server(
        runtime, committer, "127.0.0.1:0", metrics=metrics, sns_policy=LOCAL_SNS
    )
    assert server is not None
    await committer.start()
    await server.start()
    return server, committer, metrics


@pytest.fixture
async def endpoint(hook_runtime: Runtime) -> AsyncIterator[Endpoint]:
    """The webhook endpoint on a free port, with its own group commit."""
    server, committer, metrics = await start_endpoint(hook_runtime)
    session = aiohttp.ClientSession()
    try:
        yield Endpoint(
            f"http://127.0.0.1:{server.port}", hook_runtime, server, committer, metrics, session
        )
    finally:
        await session.close()
        await server.stop()
        await committer.stop()


def prepare(runtime: Runtime, message_id: str, connection: str, carrier_id: str) -> None:
    """Submit a message on ``connection`` and record its acceptance as ``carrier_id``."""
    outcomes = runtime.ledger.execute(
        [
            SubmitMessage(
                tenant=TENANT,
                message_id=message_id,
                destination="+447700900123",
                sender="ACME",
                carrier=connection,
            ),
            RecordAcceptance(tenant=TENANT, message_id=message_id, segments=((1, carrier_id),)),
        ]
    )
    assert all(isinstance(o, CommandResult) for o in outcomes), outcomes


def status_of(runtime: Runtime, message_id: str) -> Status:
    message, _ = runtime.ledger.get_message(TENANT, message_id)
    return message.outcome.status


def receipt_events(runtime: Runtime, message_id: str) -> list[str]:
    """Return the type names of a message's receipt events, in order."""
    message, _ = runtime.ledger.get_message(TENANT, message_id)
    history = runtime.store.history(message.id)
    return [type(h.event).__name__ for h in history][2:]


def unparsed_count(runtime: Runtime, connection: str) -> int:
    return len(runtime.store.list_unparsed(TENANT, connection, 100))
