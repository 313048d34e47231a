"""The webhook mode against an in-process server whose endpoint listens on a free port."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import grpc
import pytest
from aiohttp import web
from click.testing import CliRunner

from ledger.cli import main
from ledger.receipts.model import WebhookProfile
from ledger.runtime import build_runtime
from ledger.server.app import LedgerServer, create_server
from ledger.simulate.connections import write_connections
from ledger.simulate.driver import DriverConfig
from ledger.simulate.formats.base import CONTENT_FORM, CONTENT_JSON
from ledger.simulate.formats.mode import FormatsMode
from ledger.simulate.plan import PlanConfig
from ledger.simulate.runner import prepare, run_simulation
from ledger.simulate.webhook_requests import build_callback, build_probe
from ledger.simulate.webhook_sender import CallbackSender, CopyRates
from ledger.simulate.webhooks_mode import (
    WebhookEndpointError,
    WebhookProfilesError,
    WebhooksMode,
    load_webhooks,
    webhook_connections,
    write_webhook_connections,
)
from ledger.v1 import ledger_pb2
from ledger.webhooks.messagebird import verify_messagebird
from ledger.webhooks.request import Rejection, Verified, WebhookRequest
from ledger.webhooks.signers import SignedCallback
from ledger.webhooks.vonage import verify_vonage_sms
from tests.conftest import make_settings

TENANT = "sim-hooks"


def free_port() -> int:
    """Return a port that was free a moment ago.

    The profiles name the endpoint's port before the server binds it, so
    port 0 cannot be used.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class HookServer:
    """A running server with the webhook endpoint, and the profiles file it read."""

    target: str
    profiles: Path
    server: LedgerServer


async def _serve(
    database_url: str, data_dir: Path, profiles: Path, port: int
) -> AsyncIterator[HookServer]:
    settings = make_settings(
        database_url,
        data_dir,
        connections_file=profiles,
        expiry_grace_seconds=0,
        expiry_sweep_interval_seconds=1.0,
        # Low enough that bursts of callbacks get 429 and are sent again.
        webhook_rate_per_second=10.0,
        webhook_burst=2,
    )
    runtime = build_runtime(settings)
    server = await create_server(runtime, "127.0.0.1:0", webhook_address=f"127.0.0.1:{port}")
    await server.start()
    try:
        yield HookServer(f"127.0.0.1:{server.port}", profiles, server)
    finally:
        await server.stop(0)
        runtime.close()


@pytest.fixture
async def hook_server(database_url: str, tmp_path: Path) -> AsyncIterator[HookServer]:
    """A server started with the simulator's webhook profiles, on each backend."""
    port = free_port()
    profiles = tmp_path / "hooks.toml"
    write_webhook_connections(profiles, TENANT, f"127.0.0.1:{port}")
    async for running in _serve(database_url, tmp_path, profiles, port):
        yield running


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("batch_size", [0, 25], ids=["unary", "batch"])
async def test_webhooks_no_mismatches(hook_server: HookServer, batch_size: int) -> None:
    mode = FormatsMode(seed=33)
    rates = CopyRates(twin=0.08, resend=0.08, duplicate=0.08)
    hooks = WebhooksMode(33, load_webhooks(hook_server.profiles, TENANT), rates)
    config = PlanConfig(
        messages=200,
        seed=33,
        run_id=f"hook{batch_size}",
        now=datetime.now(UTC),
        carriers=tuple(mode.carriers),
        expiry_grace_seconds=0,
    )
    prepared = prepare(config, lambda plans: hooks.rewrite(mode.rewrite(plans)))
    driver = DriverConfig(
        target=hook_server.target,
        tenant=TENANT,
        concurrency=16 if batch_size == 0 else 4,
        batch_size=batch_size,
        expiry_wait_seconds=20,
        max_seconds=70,
        joined_report_connections=mode.joined_report_connections,
    )

    await mode.check(hook_server.target)
    await hooks.check()
    result = await run_simulation(prepared, driver, callbacks=hooks.sender)

    stats = hooks.sender.stats
    assert [p.detail for p in result.stats.problems] == []
    assert [m.describe() for m in result.mismatches] == []
    assert result.stats.finished == 200
    assert result.stats.commands == prepared.command_count
    assert set(stats.delivered) == set(webhook_connections())
    assert sum(stats.delivered.values()) > 150
    assert stats.twins > 0
    assert stats.resends > 0
    assert stats.duplicates > 0
    assert stats.retried["429"] > 0
    assert sum(stats.extra_duplicates.values()) > 0
    assert sum(stats.failed.values()) == 0

    assert hook_server.server.webhooks is not None
    counts = hook_server.server.webhooks.handler.metrics
    # One empty probe callback per route, and no rejected signature.
    assert counts.total("rejected_request") == len(webhook_connections())
    assert counts.total("rejected_signature") == 0
    assert counts.total("duplicate") > 0
    assert counts.total("rate_limited") == stats.retried["429"]


@pytest.fixture
async def sqlite_hook_server(tmp_path: Path) -> AsyncIterator[HookServer]:
    """A server started with the simulator's webhook profiles, on SQLite."""
    port = free_port()
    profiles = tmp_path / "hooks.toml"
    write_webhook_connections(profiles, TENANT, f"127.0.0.1:{port}")
    async for running in _serve(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, profiles, port):
        yield running


async def test_webhooks_cli_run(sqlite_hook_server: HookServer) -> None:
    args = [
        "simulate",
        "--target",
        sqlite_hook_server.target,
        "--messages",
        "40",
        "--seed",
        "5",
        "--tenant",
        TENANT,
        "--expiry-wait",
        "20",
        "--expiry-grace",
        "0",
        "--webhooks",
        "--connections-file",
        str(sqlite_hook_server.profiles),
    ]

    outcome = await asyncio.to_thread(CliRunner().invoke, main, args)

    assert outcome.exit_code == 0, outcome.output
    assert "8 routes accept signed callbacks" in outcome.output
    assert "receipts delivered as signed callbacks" in outcome.output
    assert "mismatches: 0" in outcome.output


async def test_webhooks_check_rejects_other_secrets(
    sqlite_hook_server: HookServer, tmp_path: Path
) -> None:
    assert sqlite_hook_server.server.webhooks is not None
    port = sqlite_hook_server.server.webhooks.port
    other = tmp_path / "other.toml"
    write_webhook_connections(other, TENANT, f"127.0.0.1:{port}")
    hooks = WebhooksMode(1, load_webhooks(other, TENANT))

    with pytest.raises(WebhookEndpointError) as caught:
        await hooks.check()

    assert len(caught.value.problems) == len(webhook_connections())
    assert all("signature rejected (HTTP 403)" in p for p in caught.value.problems)
    assert "SMSLEDGER_CONNECTIONS_FILE" in str(caught.value)


async def test_webhooks_check_without_endpoint(tmp_path: Path) -> None:
    profiles = tmp_path / "hooks.toml"
    write_webhook_connections(profiles, TENANT, f"127.0.0.1:{free_port()}")
    hooks = WebhooksMode(1, load_webhooks(profiles, TENANT))

    with pytest.raises(WebhookEndpointError) as caught:
        await hooks.check()

    assert all("cannot reach http://127.0.0.1:" in p for p in caught.value.problems)


def test_load_webhooks_rejects_plain_profiles(tmp_path: Path) -> None:
    plain = tmp_path / "plain.toml"
    write_connections(plain)

    with pytest.raises(WebhookProfilesError) as caught:
        load_webhooks(plain, TENANT)

    assert "sim-twilio has no webhook table" in caught.value.problems
    assert "--webhooks --tenant TENANT --write-connections FILE" in str(caught.value)


def test_load_webhooks_rejects_other_tenant(tmp_path: Path) -> None:
    profiles = tmp_path / "hooks.toml"
    write_webhook_connections(profiles, "someone-else", "127.0.0.1:8080")

    with pytest.raises(WebhookProfilesError) as caught:
        load_webhooks(profiles, TENANT)

    assert "sim-plivo has tenant 'someone-else', the run uses 'sim-hooks'" in caught.value.problems


def test_webhooks_cli_writes_profiles(tmp_path: Path) -> None:
    path = tmp_path / "hooks.toml"
    args = ["simulate", "--webhooks", "--tenant", TENANT, "--webhook-address", "127.0.0.1:9099"]

    outcome = CliRunner().invoke(main, [*args, "--write-connections", str(path)])

    assert outcome.exit_code == 0, outcome.output
    assert "SMSLEDGER_WEBHOOK_ADDRESS=127.0.0.1:9099" in outcome.output
    assert path.stat().st_mode & 0o077 == 0
    hooks = load_webhooks(path, TENANT)
    assert {name: w.provider for name, w in hooks.items()} == webhook_connections()
    assert {w.public_base_url for w in hooks.values()} == {"http://127.0.0.1:9099"}
    assert len({w.secrets[0] for w in hooks.values()}) == len(hooks)
    assert "[connections.sim-smpp-pdu]" in path.read_text()


def test_webhooks_cli_needs_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSLEDGER_CONNECTIONS_FILE", raising=False)

    outcome = CliRunner().invoke(main, ["simulate", "--webhooks", "--messages", "5"])

    assert outcome.exit_code == 2
    assert "--webhooks needs the server's connection profiles" in outcome.output


# ------------------------------------------------------------ signing

PUBLIC = "https://hooks.example.com"
VONAGE = WebhookProfile(
    provider="vonage-sms",
    tenant=TENANT,
    format="vonage",
    secrets=("vonage-secret",),
    public_base_url=PUBLIC,
    signature_method="sha256",
    message_id_param="ref",
)
MESSAGEBIRD = WebhookProfile(
    provider="messagebird",
    tenant=TENANT,
    format="messagebird",
    secrets=("mb-signing-key-0123456789abcdef0123",),
    public_base_url=PUBLIC,
    message_id_param="ref",
)


KANNEL = WebhookProfile(
    provider="kannel",
    tenant=TENANT,
    format="kannel",
    secrets=("kannel-token",),
    public_base_url=PUBLIC,
    message_id_param="ref",
)
NOW = 1_767_000_000.0
PAIRS = {
    "msisdn": "447700900123",
    "messageId": "0C1A2B",
    "status": "delivered",
    "scts": "2601021304",
}


def received(callback: SignedCallback) -> WebhookRequest:
    """Return ``callback`` as the endpoint reads it, one second after it was signed."""
    query = callback.path.partition("?")[2]
    return WebhookRequest(
        method=callback.method,
        url=f"{PUBLIC}{callback.path}",
        query=parse_qsl(query, keep_blank_values=True),
        headers=callback.headers,
        body=callback.body,
        content_type=callback.headers.get("Content-Type", "").split(";")[0],
        now=NOW + 1,
    )


def test_vonage_json_post_verifies() -> None:
    body = json.dumps(PAIRS).encode()

    callback = build_callback(
        "sim-vonage", VONAGE, body, CONTENT_JSON, {"message_id": "m1"}, now=NOW
    )

    assert callback.method == "POST"
    assert callback.path == "/hooks/sim-vonage?ref=m1"
    document = json.loads(callback.body)
    assert document["timestamp"] == str(int(NOW))
    assert {k: document[k] for k in PAIRS} == PAIRS
    assert isinstance(verify_vonage_sms(received(callback), VONAGE), Verified)


def test_vonage_form_post_verifies() -> None:
    body = urlencode(PAIRS).encode()

    callback = build_callback("sim-vonage", VONAGE, body, CONTENT_FORM, {}, now=NOW)

    assert callback.path == "/hooks/sim-vonage"
    assert callback.body.startswith(body + b"&timestamp=")
    assert isinstance(verify_vonage_sms(received(callback), VONAGE), Verified)


def test_vonage_changed_body_rejected() -> None:
    callback = build_callback(
        "sim-vonage", VONAGE, urlencode(PAIRS).encode(), CONTENT_FORM, {}, now=NOW
    )
    changed = replace(callback, body=callback.body.replace(b"delivered", b"failed"))

    assert verify_vonage_sms(received(changed), VONAGE) is Rejection.BAD_SIGNATURE


def test_vonage_get_drops_recorded_path() -> None:
    body = b"/receipts/vonage?" + urlencode(PAIRS).encode()

    callback = build_callback("sim-vonage", VONAGE, body, "", {}, now=NOW)

    assert callback.method == "GET"
    assert callback.path.startswith("/hooks/sim-vonage?msisdn=447700900123&")
    assert "receipts" not in callback.path
    assert isinstance(verify_vonage_sms(received(callback), VONAGE), Verified)


def test_vonage_probe_verifies_without_body() -> None:
    callback = build_probe("sim-vonage", VONAGE, now=NOW)

    assert callback.method == "POST"
    assert callback.body == b""
    assert isinstance(verify_vonage_sms(received(callback), VONAGE), Verified)


def test_messagebird_json_post_verifies() -> None:
    body = json.dumps({"id": "abc", "status": "delivered"}).encode()

    callback = build_callback(
        "sim-mb", MESSAGEBIRD, body, CONTENT_JSON, {"message_id": "m2"}, now=NOW
    )

    assert callback.method == "POST"
    assert callback.path == "/hooks/sim-mb?ref=m2"
    assert isinstance(verify_messagebird(received(callback), MESSAGEBIRD), Verified)


def test_kannel_reference_sent_once() -> None:
    body = b"ref=m3&type=1&fid=&smsc=sim-kannel"

    callback = build_callback("sim-kannel", KANNEL, body, "", {"message_id": "m3"}, now=NOW)

    assert callback.method == "GET"
    assert callback.path == "/hooks/sim-kannel/kannel-token?ref=m3&type=1&fid=&smsc=sim-kannel"


# ------------------------------------------------------------ sending


@dataclass
class FakeEndpoint:
    """An HTTP server that responds to callbacks with scripted statuses and keeps each request."""

    statuses: list[tuple[int, str]]
    requests: list[tuple[str, dict[str, str], bytes]]
    url: str = ""


@pytest.fixture
async def fake_endpoint() -> AsyncIterator[FakeEndpoint]:
    fake = FakeEndpoint([], [])

    async def respond(request: web.Request) -> web.Response:
        fake.requests.append((request.path_qs, dict(request.headers), await request.read()))
        status, text = fake.statuses.pop(0) if fake.statuses else (200, "")
        return web.Response(status=status, text=text, headers={"Retry-After": "0"})

    app = web.Application()
    app.router.add_route("*", "/hooks/{connection}", respond)
    app.router.add_route("*", "/hooks/{connection}/{token}", respond)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def raw_command(connection: str, body: bytes) -> ledger_pb2.Command:
    return ledger_pb2.Command(
        raw_receipt=ledger_pb2.RecordRawReceiptRequest(
            tenant=TENANT, connection=connection, content_type=CONTENT_FORM, body=body
        )
    )


async def test_sender_resends_same_request(fake_endpoint: FakeEndpoint) -> None:
    twilio = WebhookProfile(
        provider="twilio",
        tenant=TENANT,
        format="twilio",
        secrets=("twilio-token",),
        public_base_url=fake_endpoint.url,
    )
    fake_endpoint.statuses = [(503, "retry"), (429, "slow down")]
    command = raw_command("sim-twilio", b"MessageSid=SM1&MessageStatus=delivered")

    async with CallbackSender({"sim-twilio": twilio}, seed=1, rates=CopyRates(0, 0, 0)) as sender:
        result = await sender.send(command, ["m1"])

    assert result.status.code == 0
    assert len(fake_endpoint.requests) == 3
    signatures = {headers["X-Twilio-Signature"] for _, headers, _ in fake_endpoint.requests}
    assert len(signatures) == 1
    assert {body for _, _, body in fake_endpoint.requests} == {command.raw_receipt.body}
    assert sender.stats.retried == {"503": 1, "429": 1}
    assert sender.stats.delivered == {"sim-twilio": 1}


async def test_sender_rejects_jasmin_without_ack(fake_endpoint: FakeEndpoint) -> None:
    jasmin = WebhookProfile(
        provider="jasmin",
        tenant=TENANT,
        format="jasmin",
        secrets=("jasmin-token",),
        public_base_url=fake_endpoint.url,
    )
    fake_endpoint.statuses = [(200, "OK")]

    async with CallbackSender({"sim-jasmin": jasmin}, seed=1, rates=CopyRates(0, 0, 0)) as sender:
        result = await sender.send(raw_command("sim-jasmin", b"id=1&level=3"), ["m1"])

    assert result.status.code == grpc.StatusCode.INTERNAL.value[0]
    assert "without the 'ACK/Jasmin' body that Jasmin requires" in result.status.message
    assert "jasmin-token" not in result.status.message
    assert sender.stats.failed == {"sim-jasmin": 1}
