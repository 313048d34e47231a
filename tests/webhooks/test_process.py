"""``smsledger webhooks serve`` as its own process, on SQLite, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from ledger.domain.outcomes import Status
from ledger.runtime import build_runtime
from ledger.settings import Settings
from tests.support.servers import free_port
from tests.webhooks.calls import make
from tests.webhooks.conftest import PUBLIC, prepare, receipt_events, status_of, write_connections

START_SECONDS = 30.0


def settings(database_url: str, data_dir: Path, connections: Path, key: str) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        master_key=key,  # type: ignore[arg-type]
        connections_file=connections,
        webhook_public_base_url=PUBLIC,
        _env_file=None,  # type: ignore[call-arg]
    )


async def wait_healthy(process: subprocess.Popen[bytes], url: str) -> None:
    """Poll ``/healthz`` until it responds, failing if the process exits or 30 s pass."""
    deadline = time.monotonic() + START_SECONDS
    async with aiohttp.ClientSession() as session:
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"webhooks serve exited with {process.returncode}: {stderr}")
            try:
                async with session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(1)) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "webhooks serve did not respond in 30 s"
            await asyncio.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> int:
    """Send SIGTERM to the process by PID and wait for it, killing it after 20 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise


async def test_webhooks_serve_process_records_callback(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    connections = write_connections(tmp_path)
    runtime = build_runtime(settings(database_url, tmp_path, connections, key))
    try:
        prepare(runtime, "m-process", "twilio-a", "SM-PROCESS-1")
    finally:
        runtime.close()

    port = free_port()
    env = {
        **os.environ,
        "SMSLEDGER_DATABASE_URL": database_url,
        "SMSLEDGER_DATA_DIR": str(tmp_path),
        "SMSLEDGER_MASTER_KEY": key,
        "SMSLEDGER_CONNECTIONS_FILE": str(connections),
        "SMSLEDGER_WEBHOOK_PUBLIC_BASE_URL": PUBLIC,
        "SMSLEDGER_METRICS_ADDRESS": "",
        "SMSLEDGER_NATS_URL": "",
        "SMSLEDGER_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger", "webhooks", "serve", "--address", f"127.0.0.1:{port}"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(process, url)
        call = make("twilio", "SM-PROCESS-1")
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                call.method,
                URL(url + call.path, encoded=True),
                data=call.body,
                headers=call.headers,
                timeout=aiohttp.ClientTimeout(10),
            ) as response,
        ):
            assert response.status == 200
    finally:
        returncode = stop(process)
    assert returncode == 0, process.stderr.read().decode() if process.stderr else ""

    runtime = build_runtime(settings(database_url, tmp_path, connections, key))
    try:
        assert status_of(runtime, "m-process") is Status.DELIVERED
        assert receipt_events(runtime, "m-process") == ["Delivered"]
    finally:
        runtime.close()
