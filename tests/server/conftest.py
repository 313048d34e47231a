"""Clients of the ledger's gRPC services for the server tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from ledger.runtime import Runtime
from ledger.v1 import ledger_pb2_grpc


@pytest.fixture
async def stubs(
    server: tuple[str, Runtime],
) -> AsyncIterator[tuple[ledger_pb2_grpc.LedgerServiceStub, ledger_pb2_grpc.ReceiptServiceStub]]:
    """Stubs of the ledger and receipt services on a channel to the ``server`` fixture."""
    address, _ = server
    async with grpc.aio.insecure_channel(address) as channel:
        yield (
            ledger_pb2_grpc.LedgerServiceStub(channel),
            ledger_pb2_grpc.ReceiptServiceStub(channel),
        )
