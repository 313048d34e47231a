"""The README's PostgreSQL steps on a schema that does not exist yet.

``smsledger migrate`` and ``smsledger serve`` (with table creation on) create
the schema named by ``?schema=`` before its tables, also when several
processes start on it at the same time.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import psycopg
import pytest
from google.protobuf.duration_pb2 import Duration

from ledger.migrations import run_migrations
from ledger.runtime import build_runtime
from ledger.v1 import events_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from tests.conftest import make_settings, schema_exists
from tests.support.servers import free_port
from tests.support.serving import stop_process, wait_serving

MASTER_KEY = base64.b64encode(os.urandom(32)).decode()
"""Master key of every command of a test, because migrate wraps the blind-index key under it."""


def ledger_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SMSLEDGER_DATABASE_URL": database_url,
        "SMSLEDGER_DATA_DIR": str(data_dir),
        "SMSLEDGER_MASTER_KEY": MASTER_KEY,
        "SMSLEDGER_METRICS_ADDRESS": "",
        "SMSLEDGER_WEBHOOK_ADDRESS": "",
        "SMSLEDGER_NATS_URL": "",
        "SMSLEDGER_LOG_LEVEL": "WARNING",
        **extra,
    }


async def serve_and_submit(env: dict[str, str], cwd: Path) -> events_pb2.MessageStatus.ValueType:
    """Return the status of one message submitted to a new ``smsledger serve``, stopped by PID."""
    address = env["SMSLEDGER_GRPC_ADDRESS"]
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger", "serve"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_serving(address, process)
        async with grpc.aio.insecure_channel(address) as channel:
            ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
            await ledger.SubmitMessage(
                pb.SubmitMessageRequest(
                    tenant="acme",
                    message_id="fresh-1",
                    destination="+447700900123",
                    sender="ACME",
                    carrier="carrier-a",
                    validity_period=Duration(seconds=3600),
                ),
                timeout=10,
            )
            found = await ledger.GetMessage(
                pb.GetMessageRequest(tenant="acme", message_id="fresh-1"), timeout=10
            )
            return found.status
    finally:
        stop_process(process)


@pytest.mark.parametrize("migrate_first", [True, False], ids=["migrate-then-serve", "serve"])
async def test_commands_create_missing_schema(
    postgres_url: str, fresh_schema: str, tmp_path: Path, migrate_first: bool
) -> None:
    assert not schema_exists(postgres_url, fresh_schema)
    database_url = f"{postgres_url}?schema={fresh_schema}"
    if migrate_first:
        migrated = subprocess.run(
            [sys.executable, "-m", "ledger", "migrate"],
            env=ledger_env(database_url, tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr
        assert "tables are up to date" in migrated.stdout
        assert schema_exists(postgres_url, fresh_schema)

    env = ledger_env(
        database_url,
        tmp_path,
        SMSLEDGER_GRPC_ADDRESS=f"127.0.0.1:{free_port()}",
        SMSLEDGER_CREATE_TABLES="false" if migrate_first else "true",
    )
    status = await serve_and_submit(env, tmp_path)

    assert status == events_pb2.MESSAGE_STATUS_SUBMITTED
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{fresh_schema}".ledger_events').fetchone()
    assert row is not None and row[0] == 1


@pytest.mark.parametrize("attempt", range(3))
def test_simultaneous_starts_create_tables(
    postgres_url: str, fresh_schema: str, tmp_path: Path, attempt: int
) -> None:
    # Without serialized table creation, nearly every run of four at once has
    # one fail on a catalog row ("tuple concurrently updated" or a duplicate key).
    settings = make_settings(f"{postgres_url}?schema={fresh_schema}", tmp_path, db_pool_size=1)
    starting = threading.Barrier(4)
    errors: list[BaseException] = []

    def start() -> None:
        starting.wait(timeout=30)
        try:
            runtime = build_runtime(settings, create_tables=True)
            try:
                run_migrations(runtime)
            finally:
                runtime.close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                [fresh_schema],
            )
        }
    assert {"ledger_events", "ledger_requests", "rm_positions", "relay_position"} <= tables
