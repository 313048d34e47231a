"""``smsledger relay`` as a process, its --status, and the relay inside ``serve``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.relay import read_relay_status
from ledger.runtime import Runtime, build_runtime
from ledger.server.app import create_server
from tests.conftest import make_settings
from tests.relay.helpers import (
    assert_exactly_once_in_order,
    ingest,
    log_event_ids,
    read_stream,
)

pytestmark = pytest.mark.nats

SMSLEDGER = str(Path(sys.executable).parent / "smsledger")


def relay_env(runtime: Runtime, nats_url: str, stream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSLEDGER_")}
    env.update(
        SMSLEDGER_DATABASE_URL=runtime.settings.resolved_database_url,
        SMSLEDGER_NATS_URL=nats_url,
        SMSLEDGER_NATS_STREAM=stream,
        SMSLEDGER_NATS_SUBJECT_PREFIX=f"test.{stream}",
        SMSLEDGER_RELAY_POLL_INTERVAL_SECONDS="0.05",
        SMSLEDGER_RELAY_LEASE_SECONDS="1",
        # Port 0: another process on this machine may hold the default port.
        SMSLEDGER_METRICS_ADDRESS="127.0.0.1:0",
    )
    return env


def status(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [SMSLEDGER, "relay", "--status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(done.stdout))


async def test_cli_relay_runs_until_sigterm(runtime: Runtime, nats_url: str, stream_name: str):
    last = ingest(runtime, 20)
    env = relay_env(runtime, nats_url, stream_name)
    before = status(env)
    assert before["lag"] == last
    assert before["acked_position"] == 0

    process = subprocess.Popen(
        [SMSLEDGER, "relay"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while read_relay_status(runtime.store, stream_name).acked_position < last:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "relay process did not catch up"
            await asyncio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "relay publishing" in output

    after = status(env)
    assert after["lag"] == 0
    assert after["epoch"] == 1
    assert after["nats"] == {
        "messages": len(log_event_ids(runtime)),
        "last_sequence": len(log_event_ids(runtime)),
    }


def test_cli_relay_needs_nats_url(runtime: Runtime):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSLEDGER_")}
    env["SMSLEDGER_DATABASE_URL"] = runtime.settings.resolved_database_url
    done = subprocess.run([SMSLEDGER, "relay"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "SMSLEDGER_NATS_URL is not set" in done.stderr


async def test_serve_runs_relay(tmp_path: Path, nats_url: str, stream_name: str):
    settings = make_settings(
        f"sqlite:///{tmp_path / 'ledger.db'}",
        tmp_path,
        nats_url=nats_url,
        nats_stream=stream_name,
        nats_subject_prefix=f"test.{stream_name}",
        relay_poll_interval_seconds=0.05,
    )
    runtime = build_runtime(settings)
    try:
        ledger_server = await create_server(runtime, "127.0.0.1:0")
        await ledger_server.start()
        try:
            last = await asyncio.to_thread(ingest, runtime, 20)
            deadline = time.monotonic() + 30
            while read_relay_status(runtime.store, stream_name).acked_position < last:
                assert time.monotonic() < deadline, "relay in serve did not publish"
                await asyncio.sleep(0.05)
        finally:
            await ledger_server.stop(0)
        streamed = await read_stream(nats_url, stream_name, f"test.{stream_name}.>")
        assert_exactly_once_in_order(streamed, log_event_ids(runtime))
    finally:
        runtime.close()
