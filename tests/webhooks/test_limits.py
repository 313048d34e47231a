"""Body size, request rate and time limits of the webhook endpoint."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from ledger.application.committer import GroupCommitter
from ledger.runtime import Runtime, build_runtime
from ledger.settings import ConfigurationError
from ledger.webhooks.limits import TokenBucket
from ledger.webhooks.metrics import WebhookMetrics
from ledger.webhooks.replay import Claim, ReplayCache
from ledger.webhooks.server import create_webhook_server
from tests.conftest import make_settings
from tests.webhooks.calls import make
from tests.webhooks.conftest import PUBLIC, prepare, start_endpoint, write_connections


@asynccontextmanager
async def running(
    tmp_path: Path, **overrides: object
) -> AsyncIterator[tuple[str, Runtime, WebhookMetrics]]:
    runtime = build_runtime(
        make_settings(
            f"sqlite:///{tmp_path / 'ledger.db'}",
            tmp_path,
            connections_file=write_connections(tmp_path),
            webhook_public_base_url=PUBLIC,
            **overrides,
        )
    )
    server, committer, metrics = await start_endpoint(runtime)
    try:
        yield f"http://127.0.0.1:{server.port}", runtime, metrics
    finally:
        await server.stop()
        await committer.stop()
        runtime.close()


async def test_body_too_large(tmp_path: Path) -> None:
    async with running(tmp_path, webhook_max_body_bytes=1024) as (url, _, metrics):
        body = b"MessageSid=SM1&Body=" + b"x" * 2000
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/hooks/twilio-a", data=body, headers=headers) as r,
        ):
            assert r.status == 413
    assert metrics.total("too_large") == 1


async def test_overlong_path_400_without_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_path = "/hooks/kannel-a/" + "t0k3n" * 2_000
    async with running(tmp_path) as (url, _, _):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST {secret_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
    assert status_line.startswith(b"HTTP/1.")
    assert b" 400 " in status_line
    logged = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert logged, "the rejected request was not logged"
    for record in logged:
        assert record.levelno == logging.WARNING
        assert record.exc_info is None
        assert "t0k3n" not in record.getMessage()


async def test_port_in_use_names_the_setting(tmp_path: Path) -> None:
    async with running(tmp_path) as (url, runtime, _):
        taken = url.rsplit(":", 1)[1]
        second = create_webhook_server(
            runtime, GroupCommitter(runtime.ledger), f"127.0.0.1:{taken}"
        )
        assert second is not None
        with pytest.raises(ConfigurationError, match="SMSLEDGER_WEBHOOK_ADDRESS"):
            await second.start()


async def test_rate_limited(tmp_path: Path) -> None:
    async with running(tmp_path, webhook_rate_per_second=0.5, webhook_burst=2) as (url, rt, m):
        prepare(rt, "m1", "twilio-a", "SM1")
        call = make("twilio", "SM1")
        statuses = []
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.post(url + call.path, data=call.body, headers=call.headers) as r:
                    statuses.append((r.status, r.headers.get("Retry-After")))
    assert statuses[:2] == [(200, None), (200, None)]
    assert statuses[2] == (429, "2")
    assert m.total("rate_limited") == 1


async def test_slow_storage_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(tmp_path, webhook_request_timeout_seconds=0.5) as (url, runtime, m):
        prepare(runtime, "m1", "twilio-a", "SM1")
        execute = runtime.ledger.execute

        def slow(commands: object) -> object:
            time.sleep(1.5)
            return execute(commands)  # type: ignore[arg-type]

        monkeypatch.setattr(runtime.ledger, "execute", slow)
        call = make("twilio", "SM1")
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as session,
            session.post(url + call.path, data=call.body, headers=call.headers) as r,
        ):
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"
        assert time.monotonic() - started < 1.4
    assert m.total("timed_out") == 1


def fake_clock(start: float = 100.0) -> tuple[Callable[[], float], Callable[[float], None]]:
    now = [start]

    def advance(seconds: float) -> None:
        now[0] += seconds

    return (lambda: now[0]), advance


def test_token_bucket_refills() -> None:
    clock, advance = fake_clock()
    bucket = TokenBucket(rate=2, burst=2, clock=clock)
    assert bucket.take() == 0
    assert bucket.take() == 0
    assert bucket.take() == pytest.approx(0.5)
    advance(0.5)
    assert bucket.take() == 0


def test_replay_cache_claims() -> None:
    clock, advance = fake_clock()
    cache = ReplayCache(window_seconds=60, max_entries=3, clock=clock)
    assert cache.claim("n1", b"a") is Claim.FRESH
    assert cache.claim("n1", b"a") is Claim.IN_FLIGHT
    assert cache.claim("n1", b"b") is Claim.CONFLICT
    cache.complete("n1")
    assert cache.claim("n1", b"a") is Claim.RECORDED
    assert cache.claim("n2", b"a") is Claim.FRESH
    cache.release("n2")
    assert cache.claim("n2", b"a") is Claim.FRESH
    advance(61)
    assert cache.claim("n1", b"b") is Claim.FRESH


def test_replay_cache_bounded() -> None:
    clock, _ = fake_clock()
    cache = ReplayCache(window_seconds=60, max_entries=3, clock=clock)
    for n in range(10):
        cache.claim(f"n{n}", b"x")
    assert len(cache) <= 3
    assert cache.claim("n9", b"y") is Claim.CONFLICT


def test_metrics_log_throttled() -> None:
    clock, advance = fake_clock()
    metrics = WebhookMetrics(log_interval_seconds=60, clock=clock)
    assert metrics.should_log("c", "rejected_signature") == 0
    assert metrics.should_log("c", "rejected_signature") is None
    assert metrics.should_log("c", "rejected_signature") is None
    advance(61)
    assert metrics.should_log("c", "rejected_signature") == 2
