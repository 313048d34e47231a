"""Shared fixtures: real PostgreSQL and NATS servers, ledger runtimes and servers."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from ledger.runtime import Runtime, build_runtime
from ledger.settings import Settings
from tests.support.servers import NatsServer, port_open, require_or_skip, start_nats, start_postgres

SHARED_PG = os.environ.get("SMSLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SHARED_NATS = os.environ.get("SMSLEDGER_TEST_NATS", "nats://127.0.0.1:4222")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database the tests may create schemas in."""
    if port_open("127.0.0.1", 5432) and SHARED_PG.startswith(
        "postgresql://postgres@127.0.0.1:5432"
    ):
        yield SHARED_PG
        return
    try:
        server = start_postgres()
    except (RuntimeError, OSError) as error:
        require_or_skip(f"no PostgreSQL server: {error}")
        return
    try:
        yield server.url
    finally:
        server.destroy()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A database URL pointing at a fresh schema of its own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{postgres_url}?schema={schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def fresh_schema(postgres_url: str) -> Iterator[str]:
    """A schema name that does not exist; dropped afterwards if something created it."""
    schema = f"t_fresh_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def schema_exists(postgres_url: str, schema: str) -> bool:
    """Tell whether the database at ``postgres_url`` has a schema named ``schema``."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone()
    return row is not None


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """URL of a NATS server with JetStream; tests use their own stream names."""
    if port_open("127.0.0.1", 4222) and SHARED_NATS == "nats://127.0.0.1:4222":
        yield SHARED_NATS
        return
    try:
        server = start_nats()
    except (RuntimeError, OSError) as error:
        require_or_skip(f"no NATS server: {error}")
        return
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def throwaway_nats() -> Iterator[NatsServer]:
    """A NATS server of this test's own, which it may stop or kill."""
    try:
        server = start_nats()
    except (RuntimeError, OSError) as error:
        require_or_skip(f"cannot start a throwaway NATS server: {error}")
        return
    try:
        yield server
    finally:
        server.stop()


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test ledger with a fresh master key."""
    key = base64.b64encode(os.urandom(32)).decode()
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        master_key=key,  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A ledger runtime on each backend."""
    built = build_runtime(make_settings(database_url, tmp_path, expiry_grace_seconds=0))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
async def server(runtime: Runtime) -> AsyncIterator[tuple[str, Runtime]]:
    """A running ledger gRPC server on a free port; yields its address and runtime."""
    from ledger.server.app import create_server

    ledger_server = await create_server(runtime, "127.0.0.1:0")
    await ledger_server.start()
    try:
        yield f"127.0.0.1:{ledger_server.port}", runtime
    finally:
        await ledger_server.stop(0)
