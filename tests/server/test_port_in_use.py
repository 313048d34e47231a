"""A second server cannot share a port that a running server listens on."""

from __future__ import annotations

import pytest

from ledger.runtime import Runtime
from ledger.server.app import create_server


async def test_second_server_on_same_port_fails(server: tuple[str, Runtime]) -> None:
    address, runtime = server
    with pytest.raises(RuntimeError, match="Failed to bind"):
        await create_server(runtime, address)
