"""Fixtures of the security tests: a tokens file with one token per role, and servers using it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from ledger.application.commands import SubmitMessage
from ledger.runtime import Runtime, build_runtime
from ledger.security.tokens import hash_token
from ledger.server.app import LedgerServer, create_server
from tests.conftest import make_settings

# Token values are fixed test strings; the file holds only their digests.
TOKENS: dict[str, tuple[list[str], list[str] | None]] = {
    "writer": (["writer"], None),
    "reader": (["reader"], None),
    "auditor": (["auditor"], None),
    "admin": (["admin"], None),
    "acme-writer": (["writer"], ["acme"]),
    "acme-reader": (["reader"], ["acme"]),
    "acme-auditor": (["auditor"], ["acme"]),
    "acme-admin": (["admin"], ["acme"]),
    "acme-all": (["writer", "reader", "auditor", "admin"], ["acme"]),
    "all": (["writer", "reader", "auditor", "admin"], None),
}


def token_of(name: str) -> str:
    """Return the secret token of the test principal ``name``."""
    return f"test-token-{name}-0123456789abcdef"


def write_tokens_file(path: Path) -> Path:
    """Write the tokens file of :data:`TOKENS` to ``path``."""
    lines = []
    for name, (roles, tenants) in TOKENS.items():
        lines.append("[[tokens]]")
        lines.append(f'name = "{name}"')
        lines.append(f'sha256 = "{hash_token(token_of(name))}"')
        lines.append("roles = [" + ", ".join(f'"{r}"' for r in roles) + "]")
        if tenants is not None:
            lines.append("tenants = [" + ", ".join(f'"{t}"' for t in tenants) + "]")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def record_messages(runtime: Runtime, tenant: str, numbers: dict[str, str]) -> None:
    """Submit one message per ``message id: number`` through the ledger."""
    commands = [
        SubmitMessage(
            tenant=tenant, message_id=message_id, destination=number, sender="ACME", carrier="c1"
        )
        for message_id, number in numbers.items()
    ]
    outcomes = runtime.ledger.execute(commands)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes


def auth(name: str) -> tuple[tuple[str, str], ...]:
    """Return call metadata carrying the token of ``name``."""
    return (("authorization", f"Bearer {token_of(name)}"),)


@dataclass
class Secured:
    """A running server with authentication on."""

    address: str
    runtime: Runtime
    server: LedgerServer


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    """A tokens file with one token per entry of :data:`TOKENS`."""
    return write_tokens_file(tmp_path / "tokens.toml")


async def start_secured(
    database_url: str, data_dir: Path, tokens: Path | None, **settings: Any
) -> Secured:
    """Build a runtime with ``settings`` and start a server on a free loopback port."""
    runtime = build_runtime(make_settings(database_url, data_dir, tokens_file=tokens, **settings))
    server = await create_server(runtime, "127.0.0.1:0")
    await server.start()
    return Secured(f"127.0.0.1:{server.port}", runtime, server)


async def stop_secured(secured: Secured) -> None:
    """Stop a server of :func:`start_secured` and close its runtime."""
    await secured.server.stop(0)
    secured.runtime.close()


@pytest.fixture
async def secured(database_url: str, tmp_path: Path, tokens_file: Path) -> AsyncIterator[Secured]:
    """A server with the test tokens, on each backend."""
    started = await start_secured(database_url, tmp_path, tokens_file)
    try:
        yield started
    finally:
        await stop_secured(started)


@pytest.fixture
async def secured_sqlite(tmp_path: Path, tokens_file: Path) -> AsyncIterator[Secured]:
    """A server with the test tokens on SQLite (for tests that do not depend on the backend)."""
    started = await start_secured(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, tokens_file)
    try:
        yield started
    finally:
        await stop_secured(started)


@pytest.fixture
async def channel(secured: Secured) -> AsyncIterator[grpc.aio.Channel]:
    """A plaintext channel to :func:`secured`."""
    async with grpc.aio.insecure_channel(secured.address) as opened:
        yield opened
